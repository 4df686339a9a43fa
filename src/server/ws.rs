//! `GET /ws`: the event stream. Each event is one JSON text message with a `type`:
//! - `anomaly`: a flagged record (`result` as /realtime_anomaly answers, `fields` the record's
//!   own fields);
//! - `status`: a decision changed a case (`case_id`, `ticket`, `action`, `from`, `to`, `user`);
//! - `dispatch`: the outbox tried to send an item (`item`, `channel`, `status`, `error`);
//! - `model`: a retrained model was swapped in (or the retrain failed);
//!
//! The first message is `hello` with the model version. A client that falls more than
//! `[service] ws_queue_events` events behind is disconnected with a close frame saying so (it
//! reconnects and fetches the cases); at most `max_ws_clients` are connected at once, and a
//! message from a client may not exceed 64 KiB.

use super::AppState;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;

/// Largest message a client may send (clients only send pings and closes).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub async fn handler(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    let max = state.cfg.service.max_ws_clients;
    let now = state.ws_clients.fetch_add(1, Ordering::SeqCst);
    if now >= max {
        state.ws_clients.fetch_sub(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {
                "status": 503,
                "message": format!("{max} WebSocket clients are connected already ([service] max_ws_clients)"),
            }})),
        )
            .into_response();
    }
    let slot = Slot(state.clone());
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            stream_events(socket, state).await;
            drop(slot);
        })
}

/// A connected client's place in the count; given back when the connection ends (or the
/// upgrade fails).
struct Slot(Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.ws_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn stream_events(mut socket: WebSocket, state: Arc<AppState>) {
    let mut rx = state.events.subscribe();
    let hello = serde_json::json!({
        "type": "hello",
        "model_version": state.stream.engine().version,
        "profile": state.stream.engine().profile,
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let text: String = match ev {
                    Ok(t) => t.to_string(),
                    Err(RecvError::Lagged(n)) => {
                        // A slow client must not hold events for everyone: it goes, and says why.
                        let reason = format!("too slow: {n} events missed; reconnect and fetch the cases");
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: close_code::AGAIN,
                                reason: reason.into(),
                            })))
                            .await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                match msg {
                    // Pings are answered by the library; anything else from the client is ignored.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}
