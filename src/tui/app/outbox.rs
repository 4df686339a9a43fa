//! Dispatch from the UI: the outbox's sender, email/Jira/webhook previews and queueing, the outbox view.

use super::*;

impl App {
    /// Starts the background dispatch sender if it is not running. It is the store's one sender
    /// while the UI runs (nothing else here flushes the outbox).
    pub fn ensure_sender(&mut self) -> Result<(), String> {
        if self.sender.is_some() {
            return Ok(());
        }
        let options = crate::wiring::dispatch::options(&self.cfg);
        let dispatcher = dispatch::Dispatcher::new(&options).map_err(|e| e.to_string())?;
        self.sender = Some(dispatch::OutboxSender::spawn(
            self.store.clone(),
            dispatcher,
        ));
        Ok(())
    }

    /// Starts the sender when a channel is enabled (at start: it also sends what earlier
    /// sessions left queued).
    pub fn start_sender_if_enabled(&mut self) {
        if self.live.is_some() {
            return; // the service sends; this UI has no store of its own
        }
        if !self.enabled_channels().is_empty()
            && let Err(e) = self.ensure_sender()
        {
            self.fail(format!("dispatch: {e}"));
        }
    }

    /// Stops the sender after the attempt in progress; what is not sent stays in the outbox.
    pub fn stop_sender(&mut self) {
        if let Some(w) = self.sender.take() {
            w.stop();
        }
    }

    /// The accepted cases not yet dispatched on `channel`, or a message saying why there is
    /// nothing to do (the channel's problem names the setting).
    pub(super) fn reviewed_for(&mut self, channel: Channel) -> Option<Vec<Case>> {
        if let Err(e) =
            dispatch::check_channel(&crate::wiring::dispatch::options(&self.cfg), channel)
        {
            self.fail(format!("{e}; nothing was queued"));
            return None;
        }
        match dispatch::dispatchable(&self.store, Status::Accepted, channel) {
            Ok(cases) if cases.is_empty() => {
                self.info(format!(
                    "nothing to send by {channel}: no accepted case is waiting (each case goes once per channel)"
                ));
                None
            }
            Ok(cases) => Some(cases),
            Err(e) => {
                self.fail(e.to_string());
                None
            }
        }
    }

    pub(super) fn start_email(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Email) else {
            return;
        };
        let to = self.cfg.email.to.join(", ");
        self.prompt(
            InputKind::EmailTo {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
            "email to (comma-separated; [email] cc is added)",
            to,
        );
    }

    pub(super) fn start_jira(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Jira) else {
            return;
        };
        let j = &self.cfg.jira;
        let issues = if j.mode == "per_batch" {
            "one issue listing them".to_string()
        } else {
            format!("{} issue(s), one per case", cases.len())
        };
        let mut lines = vec![format!(
            "Create {issues} in Jira project {} ({}) at {}.",
            j.project, j.issue_type, j.base_url
        )];
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Jira: {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Jira {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
        });
    }

    pub(super) fn start_webhook(&mut self) {
        let Some(cases) = self.reviewed_for(Channel::Webhook) else {
            return;
        };
        let mut lines = vec![format!(
            "Post {} task(s), one per case, to {} (due dates from [webhook.sla_days]).",
            cases.len(),
            self.cfg.webhook.url.trim()
        )];
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Webhook: {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Webhook {
                case_ids: cases.into_iter().map(|c| c.id).collect(),
            },
        });
    }

    pub(super) fn email_preview(&mut self, case_ids: Vec<String>, text: &str) {
        let to: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = to
            .iter()
            .find(|a| a.parse::<lettre::message::Mailbox>().is_err())
        {
            self.fail(format!(
                "{bad:?} is not an email address (e.g. lead@example.com or \"Lead <lead@example.com>\"); nothing was queued"
            ));
            // Back to the prompt to fix it.
            return self.prompt(
                InputKind::EmailTo { case_ids },
                "email to (comma-separated; [email] cc is added)",
                text.to_string(),
            );
        }
        let cc = &self.cfg.email.cc;
        if to.is_empty() && cc.is_empty() {
            return self.fail(
                "no recipients: give at least one address (or set [email] cc); nothing was queued",
            );
        }
        let cases = match self.load_cases(&case_ids) {
            Ok(c) => c,
            Err(e) => return self.fail(e),
        };
        let status = match cases.first() {
            Some(f) if cases.iter().all(|c| c.status == f.status) => {
                f.status.as_str().to_lowercase()
            }
            _ => "reviewed".to_string(),
        };
        let subject = self
            .cfg
            .email
            .subject
            .replace("{count}", &cases.len().to_string())
            .replace("{date}", &chrono::Utc::now().format("%Y-%m-%d").to_string())
            .replace("{status}", &status);
        let mut lines = vec![format!(
            "To: {}",
            if to.is_empty() {
                "-".into()
            } else {
                to.join(", ")
            }
        )];
        if !cc.is_empty() {
            lines.push(format!("Cc: {}", cc.join(", ")));
        }
        lines.push(format!("Subject: {subject}"));
        lines.extend(summary_lines(&cases));
        lines.push(
            "Queued in the outbox first, then sent in the background; y confirms, n or esc cancels."
                .into(),
        );
        self.mode = Mode::Confirm(Confirm {
            title: format!("Email {} accepted case(s)?", cases.len()),
            lines,
            pending: Pending::Email { case_ids, to },
        });
    }

    pub(super) fn load_cases(&self, ids: &[String]) -> Result<Vec<Case>, String> {
        let handle = Cases::new(&self.store);
        ids.iter()
            .map(|id| match handle.get(id) {
                Ok(Some(c)) => Ok(c),
                Ok(None) => Err(format!("case {id} is no longer in the store")),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }

    /// Queues on `channel` (durable when it returns), then asks the sender to send now.
    pub(super) fn queue(&mut self, channel: Channel, case_ids: &[String], to: &[String]) {
        let cases = match self.load_cases(case_ids) {
            Ok(c) => c,
            Err(e) => return self.fail(format!("{e}; nothing was queued")),
        };
        let queued = match channel {
            Channel::Email => {
                // The prompt's list is the whole To line: it replaces `[email] to`.
                let mut email = crate::wiring::dispatch::email(&self.cfg.email);
                email.to = to.to_vec();
                dispatch::queue_email(&self.store, &email, &cases, &[], &self.actor)
            }
            _ => {
                let options = crate::wiring::dispatch::options(&self.cfg);
                dispatch::queue(&self.store, &options, channel, &cases, &[], &self.actor)
            }
        };
        let q = match queued {
            Ok(q) => q,
            Err(e) => return self.fail(format!("{e}; nothing was queued")),
        };
        let mut text = if q.ids.is_empty() {
            format!("nothing queued by {channel}")
        } else {
            format!(
                "queued {} case(s) by {channel} (outbox {}); sending in the background",
                q.case_ids.len(),
                q.ids
                    .iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if let Some(s) = q.skipped.first() {
            text.push_str(&format!(
                "; {} skipped ({}: {})",
                q.skipped.len(),
                s.ticket,
                s.reason
            ));
        }
        if self.view == View::Outbox {
            self.load_outbox();
        }
        if q.ids.is_empty() {
            return self.info(text);
        }
        match self.ensure_sender() {
            Ok(()) => {
                if let Some(w) = &self.sender {
                    w.flush_now();
                }
                self.info(text);
            }
            Err(e) => self.fail(format!(
                "{text}, but the sender cannot start: {e} (`breakdesk outbox flush` sends it)"
            )),
        }
    }

    pub(super) fn dispatch_event(&mut self, e: SenderEvent) {
        match e {
            SenderEvent::Recovered(ids) => self.info(format!(
                "{} interrupted dispatch(es) queued again: {}",
                ids.len(),
                ids.iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            SenderEvent::Attempted {
                id,
                channel,
                outcome,
                item,
            } => {
                let what = format!("#{id} {channel} ({} case(s))", item.case_ids.len());
                match outcome {
                    ItemOutcome::Sent { reference, .. } => self.info(format!(
                        "sent {what}{}",
                        reference.map(|r| format!(": {r}")).unwrap_or_default()
                    )),
                    ItemOutcome::Retrying {
                        next_attempt_at,
                        error,
                    } => self.fail(format!(
                        "{what} failed, retrying at {} (attempt {}): {error}",
                        next_attempt_at
                            .with_timezone(&chrono::Local)
                            .format("%H:%M:%S"),
                        item.attempts
                    )),
                    ItemOutcome::Parked { reason } => self.fail(format!(
                        "{what} parked: {reason} (4 shows the outbox; R retries)"
                    )),
                    ItemOutcome::Skipped { reason } => {
                        self.fail(format!("{what} not sent: {reason}"))
                    }
                }
            }
            SenderEvent::Failed(e) => self.fail(format!("outbox: {e}")),
        }
        if self.view == View::Outbox {
            self.load_outbox();
        }
    }

    pub fn load_outbox(&mut self) {
        match Outbox::new(&self.store).list(&OutboxFilter::default()) {
            Ok(mut items) => {
                items.sort_by_key(|i| std::cmp::Reverse(i.id));
                self.outbox = items;
            }
            Err(e) => {
                self.outbox.clear();
                self.fail(e.to_string());
            }
        }
        self.outbox_cursor = self.outbox_cursor.min(self.outbox.len().saturating_sub(1));
        // The items' cases may have changed with them (dispatch state, status).
        self.outbox_cases = None;
        self.sync_outbox_cases();
    }

    /// Reads the cases of the outbox item under the cursor when it changed.
    pub(super) fn sync_outbox_cases(&mut self) {
        if self.view != View::Outbox {
            return;
        }
        let Some(item) = self.outbox.get(self.outbox_cursor) else {
            self.outbox_cases = None;
            return;
        };
        if self
            .outbox_cases
            .as_ref()
            .is_some_and(|c| c.item_id == item.id)
        {
            return;
        }
        let id = item.id;
        let cases = self.load_cases(&item.case_ids.clone());
        self.outbox_cases = Some(ItemCases { item_id: id, cases });
        self.dirty = true;
    }

    pub(super) fn outbox_command(&mut self, cmd: Cmd) {
        let n = self.outbox.len();
        match cmd {
            Cmd::Down => self.outbox_cursor = (self.outbox_cursor + 1).min(n.saturating_sub(1)),
            Cmd::Up => self.outbox_cursor = self.outbox_cursor.saturating_sub(1),
            Cmd::Top | Cmd::PageUp => self.outbox_cursor = 0,
            Cmd::Bottom | Cmd::PageDown => self.outbox_cursor = n.saturating_sub(1),
            Cmd::RetryItem => {
                let Some(id) = self.outbox.get(self.outbox_cursor).map(|i| i.id) else {
                    return;
                };
                match Outbox::new(&self.store).retry(id, &self.actor) {
                    Ok(item) => {
                        self.load_outbox();
                        match self.ensure_sender() {
                            Ok(()) => {
                                if let Some(w) = &self.sender {
                                    w.flush_now();
                                }
                                self.info(format!(
                                    "#{id} is {} again; sending in the background",
                                    item.status.name()
                                ));
                            }
                            Err(e) => self.fail(format!(
                                "#{id} is queued again, but the sender cannot start: {e}"
                            )),
                        }
                    }
                    Err(e) => self.fail(e.to_string()),
                }
            }
            Cmd::CancelItem => {
                let Some(item) = self.outbox.get(self.outbox_cursor) else {
                    return;
                };
                let id = item.id;
                self.mode = Mode::Confirm(Confirm {
                    title: format!("Cancel outbox item #{id}?"),
                    lines: vec![
                        format!("{} — {}", item.channel, item.title),
                        format!(
                            "It will never be sent; its {} case(s) may be dispatched on {} again.",
                            item.case_ids.len(),
                            item.channel
                        ),
                        "y cancels the item, n or esc keeps it.".into(),
                    ],
                    pending: Pending::CancelItem(id),
                });
            }
            _ => {}
        }
    }

    pub(super) fn cancel_item(&mut self, id: u64) {
        match Outbox::new(&self.store).cancel(id, &self.actor) {
            Ok(_) => {
                self.load_outbox();
                self.info(format!("#{id} cancelled; nothing of it will be sent"));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    // ----- column profile -----------------------------------------------------------------------
}

/// The preview's lines about the cases: count and total absolute difference, counts by bucket
/// and severity, the first tickets.
pub(super) fn summary_lines(cases: &[Case]) -> Vec<String> {
    let abs: f64 = cases.iter().map(|c| c.difference.abs()).sum();
    let count_by = |key: &dyn Fn(&Case) -> &str, order: &[&str]| -> String {
        let mut by: Vec<(String, usize)> = Vec::new();
        for c in cases {
            let k = key(c);
            match by.iter_mut().find(|(n, _)| n == k) {
                Some((_, n)) => *n += 1,
                None => by.push((k.to_string(), 1)),
            }
        }
        by.sort_by(|a, b| {
            let pos = |s: &str| order.iter().position(|o| *o == s).unwrap_or(order.len());
            pos(&a.0)
                .cmp(&pos(&b.0))
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        by.iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    const SHOWN: usize = 5;
    let mut tickets: Vec<&str> = cases
        .iter()
        .take(SHOWN)
        .map(|c| c.ticket.as_str())
        .collect();
    let more = cases.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    tickets.dedup();
    vec![
        format!(
            "{} case(s), total absolute difference {}.",
            cases.len(),
            crate::text::thousands(abs, 2)
        ),
        format!("By bucket: {}.", count_by(&|c| c.bucket.as_str(), &[])),
        format!(
            "By severity: {}.",
            count_by(
                &|c| c.severity.as_str(),
                &["Critical", "High", "Medium", "Low"]
            )
        ),
        format!("Tickets: {}{more}.", tickets.join(", ")),
    ]
}

pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
