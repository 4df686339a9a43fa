//! The integration tests, in one binary (one link instead of one per file). Each module
//! tests one face or subsystem through the public library or the real `breakdesk` binary;
//! what they share is in `support`.

mod support;

mod architecture;
mod bounded;
mod cases;
mod cases_cli;
mod categorize;
mod categorize_llm;
mod cli;
mod cli_snapshots;
mod detect;
mod dispatch_email;
mod dispatch_http;
mod dispatch_outbox;
mod doctor;
mod faults;
mod feedback;
mod fuzz_corpus;
mod hostile;
mod ingest_edges;
mod interrupt;
mod llm_client;
mod partition;
mod properties;
mod restarts;
mod roll_forward;
mod serve;
mod service_limits;
mod shipping;
mod signal;
mod tui;
mod tui_live;
mod tui_tmux;
