//! The line prompt, the confirm dialog and the palette: their keys and what they submit.

use super::*;

impl App {
    pub(super) fn prompt(&mut self, kind: InputKind, label: &str, text: String) {
        self.mode = Mode::Prompt(InputPrompt {
            kind,
            label: label.to_string(),
            text,
        });
    }

    pub(super) fn prompt_key(&mut self, k: KeyEvent) {
        let Mode::Prompt(p) = &mut self.mode else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Backspace => {
                p.text.pop();
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => p.text.clear(),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => p.text.push(c),
            KeyCode::Enter => {
                let p = p.clone();
                self.mode = Mode::Normal;
                self.submit_prompt(p);
            }
            _ => {}
        }
    }

    pub(super) fn submit_prompt(&mut self, p: InputPrompt) {
        let text = p.text.trim().to_string();
        match p.kind {
            InputKind::Filter => {
                if text.is_empty() {
                    self.table.filter = None;
                    let keep = self.current_row();
                    self.refresh_view(keep);
                    return self.info("expression filter cleared");
                }
                let compiled = self.data.as_ref().map(|d| d.table.compile(&text));
                match compiled {
                    Some(Ok(f)) => {
                        self.table.filter = Some(f);
                        let keep = self.current_row();
                        self.refresh_view(keep);
                        self.info(format!("{} rows match", self.table.view.len()));
                    }
                    Some(Err(e)) => {
                        self.fail(format!("filter: {e}"));
                        // Back to the prompt to fix it.
                        self.mode = Mode::Prompt(p);
                    }
                    None => {}
                }
            }
            InputKind::Search => {
                if text.is_empty() {
                    self.table.search = None;
                    return;
                }
                self.table.search = Some(p.text.clone());
                // Search from the row above so the current row counts.
                let Some(d) = &self.data else { return };
                let n = self.table.view.len();
                let from = (self.table.cursor + n.max(1) - 1) % n.max(1);
                match d.table.search(&self.table.view, &p.text, from, true) {
                    Some(pos) => {
                        self.move_cursor(pos as isize);
                        self.info(format!("/{} (n next, N previous)", p.text));
                    }
                    None => self.fail(format!("no match for {:?}", p.text)),
                }
            }
            InputKind::Note { action, rows } => {
                if text.is_empty() {
                    self.fail("a reason is required; nothing was recorded");
                    return;
                }
                match action {
                    NoteFor::Flag => {
                        if let Some(r) = rows.first() {
                            self.flag(*r, &text);
                        }
                    }
                    NoteFor::Decision(a) => {
                        if rows.len() > 1 {
                            self.confirm_decision(a, rows, Some(text));
                        } else {
                            self.decide(a, &rows, Some(&text));
                        }
                    }
                }
            }
            InputKind::ReturnQueued { case_id } => {
                if text.is_empty() {
                    return self.fail("a comment is required; nothing was recorded");
                }
                self.queue_decide(&case_id, CaseAction::Return, Some(&text));
            }
            InputKind::Export { rows } => {
                if text.is_empty() || text == "-" {
                    // ("-" would be standard output: the screen.)
                    return self.fail("no file given; nothing exported");
                }
                self.export(rows, &text);
            }
            InputKind::EmailTo { case_ids } => self.email_preview(case_ids, &text),
            InputKind::CaseDecision { action, case_ids } => {
                if text.is_empty() {
                    return self.fail("a reason is required; nothing was recorded");
                }
                if case_ids.len() > 1 {
                    self.confirm_case_decision(action, case_ids, Some(text));
                } else {
                    self.decide_cases(action, &case_ids, Some(&text));
                }
            }
            InputKind::CaseNote { case_id, ticket } => {
                if text.is_empty() {
                    return self.fail("a note must not be empty; nothing was recorded");
                }
                self.add_note(&case_id, &ticket, &text);
            }
            InputKind::SaveView { view } => self.start_save_view(&text, view),
            InputKind::DeleteView => self.delete_view(&text),
        }
    }

    pub(super) fn confirm_key(&mut self, k: KeyEvent) {
        let Mode::Confirm(c) = &self.mode else {
            return;
        };
        match k.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                let pending = c.pending.clone();
                self.mode = Mode::Normal;
                match pending {
                    Pending::Quit => self.quit = true,
                    Pending::Decide { action, rows, note } => {
                        self.decide(action, &rows, note.as_deref())
                    }
                    Pending::Email { case_ids, to } => self.queue(Channel::Email, &case_ids, &to),
                    Pending::Jira { case_ids } => self.queue(Channel::Jira, &case_ids, &[]),
                    Pending::Webhook { case_ids } => self.queue(Channel::Webhook, &case_ids, &[]),
                    Pending::CancelItem(id) => self.cancel_item(id),
                    Pending::ReplaceView { name, view } => self.save_view(&name, &view, true),
                    Pending::DecideCases {
                        action,
                        case_ids,
                        note,
                    } => self.decide_cases(action, &case_ids, note.as_deref()),
                }
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                self.mode = Mode::Normal;
                self.info("cancelled; nothing was recorded");
            }
            _ => {}
        }
    }

    pub(super) fn palette_key(&mut self, k: KeyEvent) {
        let Mode::Palette { query, cursor } = &mut self.mode else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Up => *cursor = cursor.saturating_sub(1),
            KeyCode::Down => *cursor += 1,
            KeyCode::Backspace => {
                query.pop();
                *cursor = 0;
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                query.push(c);
                *cursor = 0;
            }
            KeyCode::Enter => {
                let (query, cursor) = (query.clone(), *cursor);
                let entries = self.palette_entries(&query);
                let pick = entries
                    .get(cursor.min(entries.len().saturating_sub(1)))
                    .map(|e| e.pick);
                self.mode = Mode::Normal;
                match pick {
                    Some(Pick::Cmd(cmd)) => self.command(cmd),
                    Some(Pick::View(i)) => self.recall_view(i),
                    None => {}
                }
            }
            _ => {}
        }
    }

    // ----- mouse ------------------------------------------------------------------------------
}
