//! A background sender for interactive faces: a thread that flushes the outbox when items fall
//! due (and when asked), reporting every attempt over a channel.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::outbox::{Dispatcher, ItemOutcome, Outbox, OutboxItem};
use crate::cases::Channel;
use crate::store::Store;

/// What the worker reports.
#[derive(Clone, Debug, PartialEq)]
pub enum SenderEvent {
    /// Items a stopped process had left in `sending` were queued again (at start).
    Recovered(Vec<u64>),
    /// One attempt (or skip) finished; `item` is the item as stored after it.
    Attempted {
        /// The item's id.
        id: u64,
        /// Its channel.
        channel: Channel,
        /// What happened.
        outcome: ItemOutcome,
        /// The item after the attempt.
        item: Box<OutboxItem>,
    },
    /// The store failed while flushing (the worker tries again at the next poll).
    Failed(String),
}

enum Control {
    FlushNow,
    Stop,
}

/// A thread that sends due outbox items. Dropping it (or [`OutboxSender::stop`]) stops the thread
/// after the attempt in progress; items not sent stay in the outbox.
pub struct OutboxSender {
    control: Sender<Control>,
    events: Receiver<SenderEvent>,
    thread: Option<JoinHandle<()>>,
}

impl OutboxSender {
    /// Starts the worker on `store` with `dispatcher`. It first queues again what a stopped
    /// process left in `sending`, then flushes what is due, and looks again every
    /// [`Dispatcher::poll_interval`] (or sooner, when the next retry falls due, or when asked
    /// with [`OutboxSender::flush_now`]). Items of channels the dispatcher cannot use are reported once
    /// as skipped. While it runs, it is the store's one sender: ask it to send
    /// ([`OutboxSender::flush_now`]) rather than calling [`Outbox::flush`] beside it.
    pub fn spawn(store: Arc<Store>, dispatcher: Dispatcher) -> OutboxSender {
        let (control, commands) = mpsc::channel();
        let (report, events) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("breakdesk-outbox".into())
            .spawn(move || run(&store, &dispatcher, &commands, &report))
            .ok();
        if thread.is_none() {
            let _ = control.send(Control::Stop);
        }
        OutboxSender {
            control,
            events,
            thread,
        }
    }

    /// Asks for a flush now (e.g. right after queueing).
    pub fn flush_now(&self) {
        let _ = self.control.send(Control::FlushNow);
    }

    /// The events, in order (use `try_iter` from a UI loop).
    pub fn events(&self) -> &Receiver<SenderEvent> {
        &self.events
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    store: &Store,
    dispatcher: &Dispatcher,
    commands: &Receiver<Control>,
    report: &Sender<SenderEvent>,
) {
    let outbox = Outbox::new(store);
    match outbox.recover_interrupted(super::now_millis()) {
        Ok(ids) if !ids.is_empty() => {
            let _ = report.send(SenderEvent::Recovered(ids));
        }
        Ok(_) => {}
        Err(e) => {
            let _ = report.send(SenderEvent::Failed(e.to_string()));
        }
    }
    let poll = dispatcher.poll_interval();
    let mut skipped_reported = false;
    loop {
        let pass = outbox.flush_pass(
            dispatcher,
            super::now_millis(),
            !skipped_reported,
            &mut |item, outcome| {
                let _ = report.send(SenderEvent::Attempted {
                    id: item.id,
                    channel: item.channel,
                    outcome: outcome.clone(),
                    item: Box::new(item.clone()),
                });
            },
        );
        skipped_reported = true;
        let wait = match pass.and_then(|()| outbox.pending()) {
            Ok(pending) => pending
                .iter()
                .filter(|i| dispatcher.channel_problem(i.channel).is_none())
                .filter_map(OutboxItem::next_attempt_at)
                .min()
                .map(|next| {
                    (next - super::now_millis())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .clamp(Duration::from_millis(5), poll)
                })
                .unwrap_or(poll),
            Err(e) => {
                let _ = report.send(SenderEvent::Failed(e.to_string()));
                poll
            }
        };
        match commands.recv_timeout(wait) {
            Ok(Control::FlushNow) => {
                // Newly queued items may be of a channel not reported yet.
                skipped_reported = false;
            }
            Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
