//! breakdesk: a terminal workstation for financial reconciliation analysts.
//!
//! The library holds every stage of the pipeline (ingest → features → detect → …) as plain
//! functions; the faces (command line, terminal UI, service) call [`pipeline`] and know nothing
//! of each other.

/// mimalloc for every binary of the crate (the command, its tests and benchmarks): the store's
/// writes and the data frames allocate and free in bulk, where glibc's allocator was slow.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod bounded;
pub mod break_runs;
pub mod cases;
pub mod categorize;
pub mod config;
pub mod cycle;
pub mod detect;
pub mod dispatch;
pub mod doctor;
pub mod evaluate;
pub mod expr;
pub mod features;
pub mod feedback_file;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod header;
pub mod ingest;
pub mod linalg;
pub mod llm;
pub mod logging;
pub mod memory;
pub mod net;
pub mod output;
pub mod partition;
pub mod parts;
pub mod pipeline;
pub mod profile;
pub mod realtime;
pub mod routine;
pub mod routing;
pub mod server;
pub mod shipping;
pub mod store;
pub mod text;
pub mod tui;
pub mod wiring;
