//! The case routes: list, read, and decide.

use super::{ApiError, Body, Caller, Shared};
use crate::cases::{Action, Actor, CaseError, CaseFilter, Role, Status};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CaseQuery {
    status: Option<String>,
    bucket: Option<String>,
    profile: Option<String>,
    owner: Option<String>,
    overdue: Option<bool>,
    open: Option<bool>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /cases?status=&bucket=&profile=&owner=&overdue=&open=&limit=&offset=`, in ticket order.
pub(super) async fn list_cases(
    State(state): State<Shared>,
    q: Result<Query<CaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let status = match q.status.as_deref() {
        Some(s) => Some(Status::parse_loose(s).map_err(|e| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "status", e.to_string())
        })?),
        None => None,
    };
    let filter = CaseFilter {
        status,
        bucket: q.bucket,
        profile: q.profile,
    };
    let st = state.clone();
    let (cases, unreadable) = tokio::task::spawn_blocking(move || {
        crate::cases::Cases::new(&st.store).list_readable(&filter)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    for u in &unreadable {
        tracing::warn!(case_id = %u.case_id, error = %u.error, "unreadable case left out");
    }
    let today = chrono::Utc::now().date_naive();
    let cases: Vec<crate::cases::Case> = cases
        .into_iter()
        .filter(|c| {
            q.owner
                .as_deref()
                .is_none_or(|o| c.owner.as_deref() == Some(o))
                && (q.overdue != Some(true) || c.overdue(today))
                && (q.open != Some(true) || c.status.is_open())
        })
        .collect();
    let total = cases.len();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).min(10_000);
    let page: Vec<&crate::cases::Case> = cases.iter().skip(offset).take(limit).collect();
    Ok(Json(
        json!({"total": total, "offset": offset, "limit": limit, "cases": page, "unreadable": unreadable}),
    ))
}

/// `GET /cases/{id}`: a case (by id or ticket) with its audit trail.
pub(super) async fn get_case(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let st = state.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<Value, CaseError> {
        let cases = crate::cases::Cases::new(&st.store);
        let case = cases.find(&id)?.ok_or(CaseError::NotFound {
            reference: id.clone(),
        })?;
        let events = cases.events_for(&case.id)?;
        Ok(json!({"case": case, "events": events}))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    action: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    note: Option<String>,
    /// For `assign`: the new owner.
    #[serde(default)]
    owner: Option<String>,
}

/// What a POST to `/cases/{id}/decision` asks for.
enum Asked {
    Decide(Action),
    Undo,
    Assign(String),
    Take,
    Release,
    Note(String),
}

/// `POST /cases/{id}/decision`: `{"action", "user"?, "role"?, "note"?}` with the rules of the
/// command line (a reason to reject, maker-checker on approvals, …). The acting user and role
/// come from the caller's token; a `user` or `role` in the body that disagrees is refused (403).
/// Without `[[service.users]]` the service is analyst-only and the body names the analyst.
pub(super) async fn decide(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(d): Body<Decision>,
) -> Result<Json<Value>, ApiError> {
    let actor = acting(&state, caller, &d)?;
    let action = asked(&d)?;
    let who = actor.user.clone();
    let st = state.clone();
    let note = d.note.clone();
    let (before, case) = tokio::task::spawn_blocking(move || -> Result<_, CaseError> {
        let cases = crate::cases::Cases::new(&st.store);
        let before = cases.find(&id)?.map(|c| c.status);
        let case = match action {
            Asked::Undo => cases.undo_last(&id, &actor)?,
            Asked::Decide(a) => cases.decide(&id, a, &actor, note.as_deref())?,
            Asked::Assign(owner) => cases.assign(&id, &owner, &actor)?,
            Asked::Take => cases.assign(&id, &actor.user, &actor)?,
            Asked::Release => cases.release(&id, &actor)?,
            Asked::Note(text) => cases.note(&id, &text, &actor)?,
        };
        Ok((before, case))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    state.emit(json!({
        "type": "status",
        "case_id": case.id,
        "ticket": case.ticket,
        "action": d.action,
        "from": before.map(|s| s.as_str()),
        "to": case.status.as_str(),
        "owner": case.owner,
        "user": who,
    }));
    Ok(Json(json!({"case": case})))
}

/// The acting user and role: the caller's token's, or (without `[[service.users]]`) the analyst
/// the body names.
fn acting(state: &Shared, caller: Caller, d: &Decision) -> Result<Actor, ApiError> {
    let asked_role = match d.role.as_deref() {
        None => None,
        Some("analyst") => Some(Role::Analyst),
        Some("supervisor") => Some(Role::Supervisor),
        Some(other) => {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "role",
                format!("role must be \"analyst\" or \"supervisor\", found {other:?}"),
            ));
        }
    };
    let asked_user = d.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let actor = match caller {
        Caller::User { name, role } => {
            if let Some(u) = asked_user
                && u != name
            {
                return Err(ApiError::field(
                    StatusCode::FORBIDDEN,
                    "user",
                    format!("the token is {name:?}'s; the body names {u:?}"),
                ));
            }
            if let Some(r) = asked_role
                && r != role
            {
                return Err(ApiError::field(
                    StatusCode::FORBIDDEN,
                    "role",
                    format!("{name:?} acts as {role} here; the body asks for {r}"),
                ));
            }
            Actor { user: name, role }
        }
        Caller::Open | Caller::Shared => {
            if !state.users.is_empty() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "decisions need a user's own token ([[service.users]]); the shared token may score and read only",
                ));
            }
            if asked_role == Some(Role::Supervisor) {
                return Err(ApiError::field(
                    StatusCode::FORBIDDEN,
                    "role",
                    "the service has no supervisors: approvals need [[service.users]] with role = \"supervisor\" and a token each",
                ));
            }
            let user = asked_user.ok_or_else(|| {
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "user",
                    "missing field `user` (the analyst deciding; the service has no [[service.users]])",
                )
            })?;
            Actor::analyst(user.to_string())
        }
    };
    Ok(actor)
}

/// What the body's `action` asks for.
fn asked(d: &Decision) -> Result<Asked, ApiError> {
    // `undo` takes back the user's last decision on the case (before it is dispatched);
    // `assign`, `take`, `release` and `note` change the owner or add a note (no status change).
    let missing = |field: &str, what: &str| {
        ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            format!("missing field `{field}` ({what})"),
        )
    };
    let action = match d.action.as_str() {
        "undo" => Asked::Undo,
        "take" => Asked::Take,
        "release" => Asked::Release,
        "assign" => Asked::Assign(
            d.owner
                .clone()
                .ok_or_else(|| missing("owner", "who the case is given to"))?,
        ),
        "note" => Asked::Note(
            d.note
                .clone()
                .ok_or_else(|| missing("note", "the note's text"))?,
        ),
        a => Asked::Decide(a.parse::<Action>().map_err(|e| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "action",
                format!("{e} (or undo, assign, take, release, note)"),
            )
        })?),
    };
    Ok(action)
}
