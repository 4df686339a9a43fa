//! The rejects report: written beside a run's output when rows were rejected, removed when a
//! run has none, and written when a run fails on too many rejects. The side effects of a
//! failure live here, so that [`super::exit`] only maps an error to its code.

use super::exit::{Failure, analyze_failure, bounded_failure, evaluate_failure, pipeline_failure};
use breakdesk::bounded::BoundedError;
use breakdesk::evaluate::EvaluateError;
use breakdesk::ingest::prepare::Reject;
use breakdesk::output;
use breakdesk::pipeline::{AnalyzeError, PipelineError};
use std::path::Path;

/// What a failed pipeline leaves: the rejects report of a run that failed on too many rejects
/// (in `rejects_file`), and the failure in the log.
fn record(e: &PipelineError, rejects_file: &Path) -> Result<(), Failure> {
    match e {
        PipelineError::TooManyRejects { error, rejects } => {
            output::write_rejects(rejects, rejects_file)?;
            tracing::error!(error = %error, "too many rejects");
        }
        PipelineError::Ingest(e) => tracing::error!(error = %e, "input"),
        _ => {}
    }
    Ok(())
}

/// A failed pipeline, recorded ([`record`]) and mapped to its exit code (a rejects report that
/// cannot be written is the failure then).
pub fn pipeline_failed(e: PipelineError, rejects_file: &Path) -> Failure {
    match record(&e, rejects_file) {
        Ok(()) => pipeline_failure(e),
        Err(f) => f,
    }
}

/// A failed analysis, recorded as [`pipeline_failed`] records a failed pipeline.
pub fn analyze_failed(e: AnalyzeError, rejects_file: &Path) -> Failure {
    match &e {
        AnalyzeError::Pipeline(p) => match record(p, rejects_file) {
            Ok(()) => analyze_failure(e),
            Err(f) => f,
        },
        _ => analyze_failure(e),
    }
}

/// A failed bounded-memory run, recorded as [`pipeline_failed`] records a failed pipeline.
pub fn bounded_failed(e: BoundedError, rejects_file: &Path) -> Failure {
    match &e {
        BoundedError::Analyze(AnalyzeError::Pipeline(p)) => match record(p, rejects_file) {
            Ok(()) => bounded_failure(e),
            Err(f) => f,
        },
        _ => bounded_failure(e),
    }
}

/// A failed evaluation, recorded as [`pipeline_failed`] records a failed pipeline.
pub fn evaluate_failed(e: EvaluateError, rejects_file: &Path) -> Failure {
    match &e {
        EvaluateError::Pipeline(p) => match record(p, rejects_file) {
            Ok(()) => evaluate_failure(e),
            Err(f) => f,
        },
        _ => evaluate_failure(e),
    }
}

/// The rejects report of a run that completed: written when rows were rejected; otherwise a
/// stale report from an earlier run is removed (it would mislead).
pub fn keep_or_remove(rejects: &[Reject], rejects_file: &Path) -> Result<(), Failure> {
    if !rejects.is_empty() {
        output::write_rejects(rejects, rejects_file)?;
    } else if rejects_file.exists() {
        let _ = std::fs::remove_file(rejects_file);
    }
    Ok(())
}
