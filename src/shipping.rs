//! What an installed binary says about itself and gives its shell: the build it came from
//! (`--version`), shell completions and manual pages generated from the command-line
//! definitions (so they never drift from the flags), and the health probe the container image
//! uses (`breakdesk health`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from ("unknown" outside a clone; see `build.rs`).
pub const GIT_COMMIT: &str = env!("BREAKDESK_GIT_COMMIT");

/// The date of that commit (YYYY-MM-DD, or "unknown").
pub const GIT_DATE: &str = env!("BREAKDESK_GIT_DATE");

/// The TLS stack of every outgoing connection (SMTP, Jira, webhook, LLM): set in Cargo.toml
/// (lettre `tokio1-rustls-tls`, reqwest `rustls-no-provider`, rustls `ring`). No OpenSSL.
pub const TLS_PROVIDER: &str = "rustls with ring (no OpenSSL)";

/// The commit, shortened to 12 characters.
pub fn short_commit() -> &'static str {
    GIT_COMMIT.get(..12).unwrap_or(GIT_COMMIT)
}

/// `-V`: the version, commit and date on one line.
pub fn short_version() -> String {
    format!("{VERSION} ({} {GIT_DATE})", short_commit())
}

/// `--version`: the version, the commit and its date, the store schema this build writes, and
/// the TLS provider.
pub fn long_version() -> String {
    format!(
        "{VERSION}\ncommit:       {GIT_COMMIT}\ncommit date:  {GIT_DATE}\nstore schema: {} (reads 1 to {})\ntls:          {TLS_PROVIDER}",
        crate::store::SCHEMA_VERSION,
        crate::store::SCHEMA_VERSION
    )
}

/// Writes the completion script of `shell` for `cmd` (named `bin`) to `out`.
pub fn write_completions(
    shell: clap_complete::Shell,
    cmd: &mut clap::Command,
    bin: &str,
    out: &mut dyn Write,
) {
    clap_complete::generate(shell, cmd, bin, out);
}

/// The manual page of `cmd` (roff), dated by the commit it was built from.
pub fn write_man(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    man(cmd).render(out)
}

fn man(cmd: clap::Command) -> clap_mangen::Man {
    let page = clap_mangen::Man::new(cmd).source(format!("breakdesk {VERSION}"));
    if GIT_DATE == "unknown" {
        page
    } else {
        page.date(GIT_DATE)
    }
}

/// One page per command and subcommand (`breakdesk.1`, `breakdesk-run.1`, …) in `dir`, which
/// is created when missing. Returns the files written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    fn walk(
        cmd: &clap::Command,
        dir: &Path,
        written: &mut Vec<std::path::PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, written)?;
        }
        written.push(man(cmd.clone()).generate_to(dir)?);
        Ok(())
    }
    walk(&cmd, dir, &mut written)?;
    written.sort();
    Ok(written)
}

/// The URL `breakdesk health` asks by default: `/health` on the service's bind address, with
/// an unspecified address (0.0.0.0, ::) replaced by loopback.
pub fn default_health_url(bind: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = bind.trim().parse().map_err(|_| {
        format!("the bind address {bind:?} is not an address and port such as 127.0.0.1:8080")
    })?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        other => other,
    };
    Ok(format!(
        "http://{}/health",
        std::net::SocketAddr::new(ip, addr.port())
    ))
}

/// Asks a running service's `GET /health` (within `timeout`): `Ok` with its answer when it
/// says `{"status": "ok"}`, else why not.
pub fn probe_health(url: &str, timeout: Duration) -> Result<String, String> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must be an http:// or https:// URL"));
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("breakdesk/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if crate::net::is_loopback(&parsed) {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let response = client.get(parsed.clone()).send().await.map_err(|e| {
            if e.is_timeout() {
                format!("{parsed}: no answer within {} s", timeout.as_secs_f64())
            } else {
                format!("{parsed}: {}", crate::net::error_chain(e))
            }
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string));
        match (status, said.as_deref()) {
            (200, Some("ok")) => Ok(format!("{parsed}: ok")),
            (_, Some(s)) => Err(format!("{parsed}: HTTP {status}, status {s:?}")),
            _ => Err(format!(
                "{parsed}: HTTP {status}, not a breakdesk health answer"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_provider_named_is_the_one_cargo_toml_enables() {
        let manifest = include_str!("../Cargo.toml");
        assert!(manifest.contains("\"tokio1-rustls-tls\""), "lettre's TLS");
        assert!(manifest.contains("\"rustls-no-provider\""), "reqwest's TLS");
        assert!(manifest.contains("\"ring\""), "rustls' provider");
        assert!(!manifest.contains("native-tls"), "no OpenSSL");
        assert!(TLS_PROVIDER.contains("rustls") && TLS_PROVIDER.contains("ring"));
    }

    #[test]
    fn the_long_version_names_commit_schema_and_tls() {
        let v = long_version();
        assert!(v.starts_with(VERSION), "{v}");
        assert!(v.contains(GIT_COMMIT) && v.contains(GIT_DATE), "{v}");
        assert!(
            v.contains(&format!("store schema: {}", crate::store::SCHEMA_VERSION)),
            "{v}"
        );
        assert!(v.contains(TLS_PROVIDER), "{v}");
    }

    #[test]
    fn health_urls_come_from_the_bind_address() {
        assert_eq!(
            default_health_url("0.0.0.0:8080").unwrap(),
            "http://127.0.0.1:8080/health"
        );
        assert_eq!(
            default_health_url("[::]:9000").unwrap(),
            "http://[::1]:9000/health"
        );
        assert_eq!(
            default_health_url("10.1.2.3:80").unwrap(),
            "http://10.1.2.3:80/health"
        );
        let e = default_health_url("nowhere").unwrap_err();
        assert!(e.contains("\"nowhere\""), "{e}");
    }
}
