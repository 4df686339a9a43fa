//! Who acts: the operating-system user, and the actor (user and role) the configuration's
//! `[roles]` grant on the command line, in the terminal UI and for a client of the service.

use super::Config;

/// The operating-system user: `$USER`, `$USERNAME`, else the account name of the process's user
/// (containers, cron and services often run without those variables).
pub fn os_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::env::var("USERNAME")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .or_else(process_user)
}

/// The account name of the process's user: the owner of a file the process creates, looked up in
/// /etc/passwd (`uid-N` when it is not listed there).
#[cfg(unix)]
pub fn process_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = tempfile::tempfile().ok()?.metadata().ok()?.uid();
    let listed = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _password = f.next()?;
                let id: u32 = f.next()?.trim().parse().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_string())
            })
        });
    Some(listed.unwrap_or_else(|| format!("uid-{uid}")))
}

#[cfg(not(unix))]
pub fn process_user() -> Option<String> {
    None
}

impl Config {
    /// The person acting on cases from the command line and the terminal UI: the OS user
    /// ([`os_user`]: `$USER`, `$USERNAME`, else the process's account). `user` (e.g. `--user`)
    /// or `[general] user` may name someone else only where `[roles] allow_user_override` is
    /// true. The role is `role` (e.g. `--role`), else `[general] role`, and must be one the user
    /// holds in `[roles]`: supervisors are listed, analysts too when the list is not empty.
    pub fn actor(
        &self,
        user: Option<&str>,
        role: Option<&str>,
    ) -> Result<crate::cases::Actor, ActorError> {
        use crate::cases::{Actor, Role};
        let os = os_user();
        let asked = user
            .map(|u| u.trim().to_string())
            .or_else(|| Some(self.general.user.trim().to_string()))
            .filter(|u| !u.is_empty());
        let user = match (asked, os) {
            (Some(a), Some(os)) if a == os => a,
            (Some(a), os) => {
                if !self.roles.allow_user_override {
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
        let role = self.role_asked(role)?;
        match role {
            Role::Supervisor if !self.roles.is_supervisor(&user) => Err(ActorError::Refused(
                format!("{user:?} may not act as supervisor: not listed in [roles] supervisors"),
            )),
            Role::Analyst if !self.roles.may_analyse(&user) => Err(ActorError::Refused(format!(
                "{user:?} may not act as analyst: not listed in [roles] analysts or supervisors"
            ))),
            _ => Ok(Actor { user, role }),
        }
    }
}

impl Config {
    fn role_asked(&self, role: Option<&str>) -> Result<crate::cases::Role, ActorError> {
        use crate::cases::Role;
        match role
            .unwrap_or(&self.general.role)
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "analyst" => Ok(Role::Analyst),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(ActorError::Usage(format!(
                "--role must be analyst or supervisor, found {other:?}"
            ))),
        }
    }

    /// Who a client of the service says it is (`open --live`): `user`, `[general] user` or the
    /// OS user, in the role asked. Nothing is checked here: the service decides from the
    /// token who acts and in which role.
    pub fn claimed_actor(
        &self,
        user: Option<&str>,
        role: Option<&str>,
    ) -> Result<crate::cases::Actor, ActorError> {
        let user = user
            .map(|u| u.trim().to_string())
            .or_else(|| Some(self.general.user.trim().to_string()))
            .filter(|u| !u.is_empty())
            .or_else(os_user)
            .ok_or_else(|| ActorError::Usage("no user name: give --user".to_string()))?;
        Ok(crate::cases::Actor {
            user,
            role: self.role_asked(role)?,
        })
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
