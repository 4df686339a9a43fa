//! `GET /ws`: the event stream. Each event is one JSON text message with a `type`:
//! - `anomaly`: a flagged record (`result` as /realtime_anomaly answers, `fields` the record's
//!   own fields);
//! - `status`: a decision changed a case (`case_id`, `ticket`, `action`, `from`, `to`, `user`);
//! - `dispatch`: the outbox tried to send an item (`item`, `channel`, `status`, `error`);
//! - `model`: a retrained model was swapped in (or the retrain failed);
//! - `lagged`: this client fell behind and `missed` events were dropped for it.
//!
//! The first message is `hello` with the model version.

use super::AppState;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub async fn handler(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| stream_events(socket, state))
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
                    Err(RecvError::Lagged(n)) => serde_json::json!({"type": "lagged", "missed": n}).to_string(),
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
