//! Who acts, and in which role: maker-checker decided from the `[roles]` lists, never from the
//! caller. The faces gather the names asked (`--user`, `--role`, `[general]`) and the OS user;
//! the decision is here, the same whatever face asks.

use super::{Actor, Role};

/// Who may act in which role: the users listed as supervisors and as analysts, and whether a
/// user other than the OS user may be named.
#[derive(Debug, Clone, Copy)]
pub struct RoleGrants<'a> {
    /// Users who may act as supervisors (approve or return auto-resolutions).
    pub supervisors: &'a [String],
    /// Users who may act as analysts; empty: every user (supervisors always may).
    pub analysts: &'a [String],
    /// Whether the user asked for may be someone other than the OS user.
    pub allow_user_override: bool,
}

impl RoleGrants<'_> {
    fn listed(list: &[String], user: &str) -> bool {
        list.iter().any(|u| u.trim() == user)
    }

    /// Whether `user` is listed as a supervisor.
    pub fn is_supervisor(&self, user: &str) -> bool {
        Self::listed(self.supervisors, user)
    }

    /// Whether `user` may act as an analyst.
    pub fn may_analyse(&self, user: &str) -> bool {
        self.analysts.is_empty() || Self::listed(self.analysts, user) || self.is_supervisor(user)
    }
}

/// Why no actor: a malformed request, or a role or name the configuration does not grant.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
}

/// The role named by `role` (`analyst` or `supervisor`, any case, spaces trimmed).
fn role_asked(role: &str) -> Result<Role, ActorError> {
    match role.trim().to_ascii_lowercase().as_str() {
        "analyst" => Ok(Role::Analyst),
        "supervisor" => Ok(Role::Supervisor),
        other => Err(ActorError::Usage(format!(
            "--role must be analyst or supervisor, found {other:?}"
        ))),
    }
}

impl Actor {
    /// The person acting on cases from the command line and the terminal UI: `os_user`, unless
    /// `asked` (a name given, already trimmed, not empty) names someone else and the grants allow
    /// it. The `role` asked must be one the user holds: supervisors are listed, analysts too
    /// when their list is not empty.
    pub fn resolve(
        asked: Option<String>,
        os_user: Option<String>,
        role: &str,
        grants: &RoleGrants<'_>,
    ) -> Result<Actor, ActorError> {
        let user = match (asked, os_user) {
            (Some(a), Some(os)) if a == os => a,
            (Some(a), os) => {
                if !grants.allow_user_override {
                    return Err(ActorError::Refused(format!(
                        "acting as {a:?} is refused: decisions are recorded under the OS user{} \
                         ([roles] allow_user_override = true lets --user and [general] user name someone else)",
                        os.map(|o| format!(" ({o:?})")).unwrap_or_default()
                    )));
                }
                a
            }
            (None, Some(os)) => os,
            (None, None) => {
                return Err(ActorError::Usage(
                    "no user name: the OS user is unknown ($USER, $USERNAME and the process's account); \
                     set [roles] allow_user_override = true and give --user"
                        .to_string(),
                ));
            }
        };
        let role = role_asked(role)?;
        match role {
            Role::Supervisor if !grants.is_supervisor(&user) => Err(ActorError::Refused(format!(
                "{user:?} may not act as supervisor: not listed in [roles] supervisors"
            ))),
            Role::Analyst if !grants.may_analyse(&user) => Err(ActorError::Refused(format!(
                "{user:?} may not act as analyst: not listed in [roles] analysts or supervisors"
            ))),
            _ => Ok(Actor { user, role }),
        }
    }

    /// Who a client of the service says it is: `user` (a name given, already trimmed, not
    /// empty) or else the OS user, in the `role` asked. Nothing is checked here: the service
    /// decides from the token who acts and in which role.
    pub fn claimed(
        user: Option<String>,
        os_user: impl FnOnce() -> Option<String>,
        role: &str,
    ) -> Result<Actor, ActorError> {
        let user = user
            .or_else(os_user)
            .ok_or_else(|| ActorError::Usage("no user name: give --user".to_string()))?;
        Ok(Actor {
            user,
            role: role_asked(role)?,
        })
    }
}
