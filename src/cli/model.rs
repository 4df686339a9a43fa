//! `model`: the saved models.

use super::args::open_store;
use super::exit::{self, Failure, fail, store_failure};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::detect::model::ModelBundle;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// The saved models, with their version, training rows and date.
    List,
    /// Write a saved model bundle (JSON) to a file.
    Export {
        /// Profile of the model (gl_ihub, trades, generic or a custom profile's name).
        #[arg(long)]
        profile: String,
        /// iforest or lof; default `[detect] detector`.
        #[arg(long)]
        detector: Option<String>,
        #[arg(long, short)]
        out: PathBuf,
    },
}

pub fn model(cfg: Config, command: &ModelCommand) -> Result<(), Failure> {
    let store = open_store(&cfg)?;
    match command {
        ModelCommand::List => {
            for name in store.model_names().map_err(store_failure)? {
                let bytes = store
                    .get_model(&name)
                    .map_err(store_failure)?
                    .unwrap_or_default();
                match ModelBundle::from_json(&bytes) {
                    Ok(b) => println!(
                        "{name:<20} {}  trained {} on {} rows, {} features, contamination {}",
                        b.version(),
                        b.trained_at,
                        b.training_rows,
                        b.feature_names.len(),
                        b.contamination
                    ),
                    Err(e) => println!("{name:<20} unreadable: {e}"),
                }
            }
            Ok(())
        }
        ModelCommand::Export {
            profile,
            detector,
            out,
        } => {
            let detector = detector.as_deref().unwrap_or(&cfg.detect.detector);
            let key = format!("{profile}/{detector}");
            let bytes = store
                .get_model(&key)
                .map_err(store_failure)?
                .ok_or_else(|| {
                    fail(
                        exit::INPUT,
                        anyhow::anyhow!(
                            "no saved model {key:?} in {}; train one with `breakdesk train FILE`",
                            store.path().display()
                        ),
                    )
                })?;
            std::fs::write(out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(())
        }
    }
}
