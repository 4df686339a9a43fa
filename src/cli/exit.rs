//! Exit codes, documented in docs/cli.md ("Exit codes"), and the one place that maps an error to its code.

use breakdesk::ingest::IngestError;
use breakdesk::pipeline::{AnalyzeError, DetectError, PipelineError};
use breakdesk::store::StoreError;

pub const FAILURE: u8 = 1;
pub const CONFIG: u8 = 2;
pub const INPUT: u8 = 3;
pub const REJECTS: u8 = 4;
pub const STORE: u8 = 5;
/// A decision the workflow refuses (illegal transition, maker-checker, missing reason).
pub const DECISION: u8 = 6;
/// A dispatch that did not complete: an item was parked, or is still waiting to be retried.
pub const DISPATCH: u8 = 7;
/// `breakdesk doctor` found at least one problem.
pub const DOCTOR: u8 = 8;

/// An error with the exit code it deserves.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: FAILURE,
            error: e.into(),
        }
    }
}

pub fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

pub fn usage(message: String) -> Failure {
    fail(CONFIG, anyhow::anyhow!(message))
}

pub fn store_failure(e: StoreError) -> Failure {
    fail(STORE, e.into())
}

pub fn case_failure(e: breakdesk::cases::CaseError) -> Failure {
    use breakdesk::cases::CaseError;
    let code = match &e {
        CaseError::Store(_) | CaseError::Corrupt { .. } => STORE,
        CaseError::NotFound { .. } => INPUT,
        _ => DECISION,
    };
    fail(code, e.into())
}

/// A failed pipeline's exit code. The rejects report a run that failed on too many rejects
/// carries is the caller's to write (see [`super::rejects`]).
pub fn pipeline_failure(e: PipelineError) -> Failure {
    match e {
        PipelineError::TooManyRejects { error, .. } => fail(REJECTS, (*error).into()),
        PipelineError::Ingest(e) => {
            let code = match e {
                IngestError::Config { .. } => CONFIG,
                IngestError::Profile(breakdesk::profile::ProfileError::Unknown { .. })
                | IngestError::Profile(breakdesk::profile::ProfileError::Invalid { .. }) => CONFIG,
                _ => INPUT,
            };
            fail(code, e.into())
        }
        PipelineError::Config(m) => usage(m),
        PipelineError::Cancelled => interrupted(),
        PipelineError::Features(e @ breakdesk::features::FeatureError::Mismatch(_)) => {
            fail(INPUT, e.into())
        }
        e => e.into(),
    }
}

/// A command stopped by Ctrl-C or SIGTERM at a stage boundary ([`super::interrupt`]).
fn interrupted() -> Failure {
    fail(
        super::interrupt::exit_code(),
        anyhow::anyhow!("interrupted: stopped before its output was written; no case was recorded"),
    )
}

pub fn analyze_failure(e: AnalyzeError) -> Failure {
    match e {
        AnalyzeError::Pipeline(p) => pipeline_failure(p),
        AnalyzeError::Detect(d) => detect_failure(d),
        AnalyzeError::Rules(r) => fail(CONFIG, r.into()),
        AnalyzeError::Cases(c) => case_failure(c),
        AnalyzeError::Table(t) => t.into(),
    }
}

pub fn detect_failure(e: DetectError) -> Failure {
    match e {
        DetectError::Store(s) => store_failure(s),
        DetectError::Config(m) => usage(m),
        e @ DetectError::Unfit { .. } => fail(CONFIG, e.into()),
        e @ DetectError::Bundle { .. } => fail(CONFIG, e.into()),
        DetectError::Model(m @ breakdesk::detect::model::ModelError::TooFewRows(_)) => {
            fail(INPUT, m.into())
        }
        other => other.into(),
    }
}

pub fn part_failure(e: breakdesk::parts::PartError) -> Failure {
    use breakdesk::parts::PartError;
    match e {
        PartError::Read { .. }
        | PartError::Invalid { .. }
        | PartError::Mismatch { .. }
        | PartError::Incomplete(_) => fail(INPUT, e.into()),
        PartError::Rules(r) => fail(CONFIG, r.into()),
        PartError::TooManyRejects { error, .. } => fail(REJECTS, (*error).into()),
        PartError::Detect(d) => detect_failure(d),
        PartError::Cases(c) => case_failure(c),
        PartError::Cancelled => interrupted(),
        e => e.into(),
    }
}

pub fn notify_failure(e: breakdesk::dispatch::DispatchError) -> Failure {
    use breakdesk::dispatch::DispatchError;
    let code = match e {
        DispatchError::Case(c) => return case_failure(c),
        DispatchError::NotConfigured(_) | DispatchError::Invalid(_) => CONFIG,
        DispatchError::NotFound(_) => INPUT,
        DispatchError::Refused { .. } => DECISION,
        DispatchError::Store(_) | DispatchError::Corrupt { .. } => STORE,
        DispatchError::Runtime(_) => FAILURE,
    };
    fail(code, e.into())
}

pub fn bounded_failure(e: breakdesk::bounded::BoundedError) -> Failure {
    use breakdesk::bounded::BoundedError;
    match e {
        BoundedError::Analyze(a) => analyze_failure(a),
        BoundedError::Part(p) => part_failure(p),
        e @ BoundedError::NoKeys(_) => fail(CONFIG, e.into()),
        e @ BoundedError::Split(_) => fail(INPUT, e.into()),
        e @ BoundedError::Spill { .. } => e.into(),
    }
}

pub fn serve_failure(e: breakdesk::server::ServeError) -> Failure {
    use breakdesk::server::ServeError;
    let code = match e {
        ServeError::Config(_) => CONFIG,
        ServeError::Start(_) => INPUT,
        ServeError::Bind { .. } => FAILURE,
    };
    fail(code, e.into())
}

/// A user or role the command cannot act as: a usage error, or a refusal by `[roles]`.
pub fn actor_failure(e: breakdesk::cases::ActorError) -> Failure {
    use breakdesk::cases::ActorError;
    match e {
        ActorError::Usage(m) => usage(m),
        ActorError::Refused(m) => fail(DECISION, anyhow::anyhow!(m)),
    }
}

pub fn evaluate_failure(e: breakdesk::evaluate::EvaluateError) -> Failure {
    use breakdesk::evaluate::EvaluateError;
    match e {
        EvaluateError::Pipeline(p) => pipeline_failure(p),
        EvaluateError::Detect(d) => detect_failure(d),
        EvaluateError::Rules(r) => fail(CONFIG, r.into()),
        e @ (EvaluateError::Read { .. } | EvaluateError::Line(_)) => fail(INPUT, e.into()),
        e @ (EvaluateError::Rows(_) | EvaluateError::Table(_)) => e.into(),
    }
}
