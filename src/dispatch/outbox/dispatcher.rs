//! The dispatcher: the channels built from their options, and one attempt to send an item.

use std::time::Duration;

use super::{OutboxItem, Payload, RetryPolicy};
use crate::cases::Channel;
use crate::dispatch::{DispatchError, DispatchOptions, email, jira, webhook};

/// The result of sending one item, as a channel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// Delivered.
    Sent {
        reference: Option<String>,
        detail: String,
    },
    /// Failed for a reason that may pass (timeout, connection, 408, 429, 5xx, SMTP 4xx).
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Failed for a reason a retry will not fix (4xx, SMTP 5xx, refused settings).
    Permanent { error: String },
}

/// Sends outbox items: the channels built from their options (secrets read from the
/// environment once, here), the retry policy, and the async runtime the network calls run on.
/// A channel that is off or misconfigured is kept with the reason; its items are skipped (left
/// as they are) until a dispatcher with working settings sends them.
pub struct Dispatcher {
    runtime: Option<tokio::runtime::Runtime>,
    email: Result<email::Sender, String>,
    jira: Result<jira::Client, String>,
    webhook: Result<webhook::Client, String>,
    policy: RetryPolicy,
    poll: Duration,
    flush_wait: Duration,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("email", &self.email.as_ref().map(|_| "ready"))
            .field("jira", &self.jira.as_ref().map(|_| "ready"))
            .field("webhook", &self.webhook.as_ref().map(|_| "ready"))
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Builds the channels of `options` (reading their secrets from the environment variables
    /// they name) and the runtime. Fails only when the runtime cannot start; a channel's own
    /// problem is kept (see [`Dispatcher::channel_problem`]).
    pub fn new(options: &DispatchOptions) -> Result<Dispatcher, DispatchError> {
        // Only the first installation wins; an error means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("breakdesk-dispatch")
            .build()
            .map_err(|e| DispatchError::Runtime(e.to_string()))?;
        // lettre's connection pool starts a task on the runtime it is built in.
        let email = {
            let _guard = runtime.enter();
            email::Settings::new(&options.email).and_then(email::Sender::new)
        };
        let jira = jira::Settings::new(&options.jira).and_then(jira::Client::new);
        let webhook = webhook::Settings::new(&options.webhook).and_then(webhook::Client::new);
        Ok(Dispatcher {
            runtime: Some(runtime),
            email,
            jira,
            webhook,
            policy: options.outbox.retry.clone(),
            poll: options.outbox.poll,
            flush_wait: options.outbox.flush_wait,
        })
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// How often a [`super::OutboxSender`](crate::dispatch::OutboxSender) looks for due items (`[outbox] poll_secs`).
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// How long [`Outbox::flush`](super::Outbox::flush) waits for retries by default (`[outbox] flush_wait_secs`).
    pub fn flush_wait(&self) -> Duration {
        self.flush_wait
    }

    /// Why `channel` cannot send with these settings (naming the setting), or `None` when it
    /// can.
    pub fn channel_problem(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Email => self.email.as_ref().err(),
            Channel::Jira => self.jira.as_ref().err(),
            Channel::Webhook => self.webhook.as_ref().err(),
        }
        .map(String::as_str)
    }

    /// Sends one item's payload (one attempt; a Jira attempt searches before it creates).
    pub(crate) fn send(&self, item: &OutboxItem) -> SendOutcome {
        let problem = |m: &str| SendOutcome::Transient {
            error: m.to_string(),
            retry_after: None,
        };
        match &item.payload {
            Payload::Email(p) => match &self.email {
                Ok(sender) => self.block_on(sender.send(p)),
                Err(m) => problem(m),
            },
            Payload::Jira(p) => match &self.jira {
                Ok(client) => self.block_on(client.send(p)),
                Err(m) => problem(m),
            },
            Payload::Webhook(p) => match &self.webhook {
                Ok(client) => self.block_on(client.send(p)),
                Err(m) => problem(m),
            },
        }
    }

    fn block_on<F>(&self, future: F) -> SendOutcome
    where
        F: std::future::Future<Output = SendOutcome> + Send,
    {
        let Some(runtime) = &self.runtime else {
            return SendOutcome::Transient {
                error: "the dispatcher is shutting down".into(),
                retry_after: None,
            };
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside another runtime (where blocking is not allowed): drive ours from a helper
            // thread.
            std::thread::scope(
                |scope| match scope.spawn(|| runtime.block_on(future)).join() {
                    Ok(outcome) => outcome,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            )
        } else {
            runtime.block_on(future)
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code; shutting it down in the
        // background is safe everywhere. lettre's pool starts a task to close its connections
        // when it is dropped, so the sender goes first, inside the runtime.
        if let Some(runtime) = self.runtime.take() {
            {
                let _inside = runtime.enter();
                self.email = Err("the dispatcher was dropped".into());
            }
            runtime.shutdown_background();
        }
    }
}
