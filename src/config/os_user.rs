//! The operating-system user: the user name decisions are recorded under when none is given
//! (the actor and its role are decided in `cases` from the `[roles]` lists).

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
