//! From the configuration to each layer's own options.
//!
//! The faces (the command line, the terminal UI, the service) read the [`Config`] and hand each
//! layer below them the options type that layer owns, built here: nothing below the faces
//! imports `config`, and `config` imports nothing of the crate. The checks that need a
//! subsystem's own parser (an encoding, a detector, a filter expression) run here when the
//! configuration is loaded ([`check::load`]), with the messages `config` gives for its own.
//!
//! [`Config`]: crate::config::Config

pub mod check;
pub mod dispatch;
pub mod run;
