//! Email: the report message, rendered completely when it is queued, and the SMTP sender
//! (lettre over tokio with rustls/ring: STARTTLS, implicit TLS, or plain to a local relay).

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::options::{EmailOptions, TlsMode};
use super::outbox::SendOutcome;
use super::{DispatchError, report};
use crate::cases::Case;

/// An email as queued: the whole RFC 5322 message (headers, HTML and text alternatives, CSV
/// attachment) and its envelope. A retry sends these bytes again, with the same Message-ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// Envelope sender (`MAIL FROM`).
    pub from: String,
    /// Envelope recipients (`RCPT TO`): the To and Cc addresses.
    pub recipients: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The Message-ID header, `<…>`.
    pub message_id: String,
    /// The formatted message.
    pub message: String,
}

/// `[email]`, checked, with the password read from the environment.
pub(crate) struct Settings {
    host: String,
    port: u16,
    security: TlsMode,
    ca_pem: Option<Vec<u8>>,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    subject: String,
    top: usize,
    attach_csv: bool,
    mask: bool,
    timeout: Duration,
}

impl Settings {
    /// Checks the email options; the error names the setting or the environment variable.
    pub(crate) fn new(o: &EmailOptions) -> Result<Settings, String> {
        if !o.enabled {
            return Err(
                "email is not configured: set [email] enabled = true, with host, from and to"
                    .into(),
            );
        }
        let host = o.host.trim().to_string();
        if host.is_empty() {
            return Err("email is not configured: [email] host is empty (the SMTP server)".into());
        }
        let security = o.tls;
        if security == TlsMode::Plain && !is_local_host(&host) {
            return Err(format!(
                "[email] tls = \"none\" sends in clear text and is allowed only for a relay on this machine (localhost, 127.0.0.1, ::1), not {host}"
            ));
        }
        if o.port == 0 {
            return Err("[email] port must not be 0".into());
        }
        let ca_pem = read_ca_file(o.ca_file.as_deref(), "[email] ca_file")?;
        let credentials = match &o.username {
            None => None,
            Some(user) => Some((
                user.clone(),
                secret_from_env(o.password_env.as_deref(), "[email] password_env")?.ok_or_else(
                    || {
                        format!(
                            "[email] username is set but the environment variable {} (named by [email] password_env) is not set",
                            display_env(o.password_env.as_deref())
                        )
                    },
                )?,
            )),
        };
        let from: Mailbox = o.from.trim().parse().map_err(|e| {
            format!(
                "email is not configured: [email] from {:?} is not an email address ({e})",
                o.from
            )
        })?;
        let parse_all = |list: &[String], key: &str| -> Result<Vec<Mailbox>, String> {
            list.iter()
                .map(|a| {
                    a.trim()
                        .parse::<Mailbox>()
                        .map_err(|e| format!("[email] {key}: {a:?} is not an email address ({e})"))
                })
                .collect()
        };
        if o.timeout.is_zero() {
            return Err("[email] timeout_secs must be more than 0".into());
        }
        Ok(Settings {
            host,
            port: o.port,
            security,
            ca_pem,
            credentials,
            hello_name: o.hello_name.clone(),
            from,
            to: parse_all(&o.to, "to")?,
            cc: parse_all(&o.cc, "cc")?,
            subject: o.subject.clone(),
            top: o.top_breaks,
            attach_csv: o.attach_csv,
            mask: o.mask_accounts,
            timeout: o.timeout,
        })
    }
}

/// Parses addresses given for one dispatch (e.g. `--to`).
pub(crate) fn parse_recipients(list: &[String], what: &str) -> Result<Vec<Mailbox>, DispatchError> {
    list.iter()
        .map(|a| {
            a.trim().parse::<Mailbox>().map_err(|e| {
                DispatchError::Invalid(format!("{what} {a:?} is not an email address ({e})"))
            })
        })
        .collect()
}

/// Renders the report of `cases` as the complete message for outbox item `id`.
pub(crate) fn build(
    settings: &Settings,
    cases: &[Case],
    extra_to: &[Mailbox],
    id: u64,
    now: DateTime<Utc>,
    cycle: Option<Vec<String>>,
) -> Result<EmailPayload, DispatchError> {
    let mut to: Vec<Mailbox> = Vec::new();
    for m in settings.to.iter().chain(extra_to) {
        if !to
            .iter()
            .chain(&settings.cc)
            .any(|x| x.email.to_string().eq_ignore_ascii_case(m.email.as_ref()))
        {
            to.push(m.clone());
        }
    }
    if to.is_empty() && settings.cc.is_empty() {
        return Err(DispatchError::NotConfigured(
            "email has no recipients: set [email] to (or cc), or give recipients for this dispatch (--to)".into(),
        ));
    }
    let status = report::status_label(cases);
    let date = now.format("%Y-%m-%d").to_string();
    let subject = settings
        .subject
        .replace("{count}", &cases.len().to_string())
        .replace("{date}", &date)
        .replace("{status}", &status);
    let rendered = report::render(
        cases,
        &report::Options {
            title: subject.clone(),
            top: settings.top,
            mask: settings.mask,
            generated_at: now,
            cycle,
        },
    );
    let mut digest = Sha256::new();
    for c in cases {
        digest.update(c.id.as_bytes());
        digest.update([0]);
    }
    digest.update(now.to_rfc3339().as_bytes());
    let hash = crate::cases::hex(&digest.finalize()[..6]);
    let message_id = format!("<breakdesk.{id}.{hash}@{}>", settings.from.email.domain());
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .subject(subject.clone())
        .date(now.into())
        .message_id(Some(message_id.clone()))
        .user_agent(concat!("breakdesk/", env!("CARGO_PKG_VERSION")).to_string());
    for m in &to {
        builder = builder.to(m.clone());
    }
    for m in &settings.cc {
        builder = builder.cc(m.clone());
    }
    let alternative = MultiPart::alternative_plain_html(rendered.text, rendered.html);
    let message = if settings.attach_csv {
        let csv_type = ContentType::parse("text/csv; charset=utf-8")
            .map_err(|e| DispatchError::Invalid(format!("CSV content type: {e}")))?;
        builder.multipart(
            MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new(format!("breakdesk-cases-{}.csv", now.format("%Y%m%d")))
                    .body(rendered.csv, csv_type),
            ),
        )
    } else {
        builder.multipart(alternative)
    }
    .map_err(|e| DispatchError::Invalid(format!("cannot build the email: {e}")))?;
    let envelope = message.envelope();
    let from = envelope
        .from()
        .map(|a| a.to_string())
        .unwrap_or_else(|| settings.from.email.to_string());
    let recipients = envelope.to().iter().map(|a| a.to_string()).collect();
    let message = String::from_utf8(message.formatted())
        .map_err(|e| DispatchError::Invalid(format!("the email is not UTF-8: {e}")))?;
    Ok(EmailPayload {
        from,
        recipients,
        subject,
        message_id,
        message,
    })
}

/// The SMTP transport of the settings (pooled connections).
pub(crate) struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    password: Option<String>,
    timeout: Duration,
}

impl Sender {
    /// Builds the transport (must run inside the dispatcher's runtime). Nothing is sent.
    pub(crate) fn new(s: Settings) -> Result<Sender, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .timeout(Some(s.timeout));
        builder = builder.tls(match tls_parameters(&s)? {
            Some(params) if s.security == TlsMode::Implicit => Tls::Wrapper(params),
            Some(params) => Tls::Required(params),
            None => Tls::None,
        });
        if let Some(name) = &s.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        let password = s.credentials.as_ref().map(|(_, p)| p.clone());
        if let Some((user, pass)) = s.credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(Sender {
            transport: builder.build(),
            password,
            timeout: s.timeout,
        })
    }

    /// Sends the stored message once.
    pub(crate) async fn send(&self, p: &EmailPayload) -> SendOutcome {
        let permanent = |error: String| SendOutcome::Permanent { error };
        let from: Address = match p.from.parse() {
            Ok(a) => a,
            Err(e) => return permanent(format!("bad sender {:?}: {e}", p.from)),
        };
        let mut to = Vec::new();
        for r in &p.recipients {
            match r.parse::<Address>() {
                Ok(a) => to.push(a),
                Err(e) => return permanent(format!("bad recipient {r:?}: {e}")),
            }
        }
        let envelope = match lettre::address::Envelope::new(Some(from), to) {
            Ok(e) => e,
            Err(e) => return permanent(format!("bad envelope: {e}")),
        };
        // lettre's own timeout covers each command; this bounds the whole exchange too.
        let bound = self.timeout.saturating_mul(4);
        let sent = tokio::time::timeout(
            bound,
            self.transport.send_raw(&envelope, p.message.as_bytes()),
        )
        .await;
        match sent {
            Ok(Ok(response)) => SendOutcome::Sent {
                reference: Some(p.message_id.clone()),
                detail: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
            },
            Ok(Err(e)) => self.classify(&e),
            Err(_) => SendOutcome::Transient {
                error: format!("SMTP exchange timed out after {} s", bound.as_secs_f64()),
                retry_after: None,
            },
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendOutcome {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let t = cause.to_string();
            if !text.contains(&t) {
                text.push_str(": ");
                text.push_str(&t);
            }
            source = cause.source();
        }
        let error =
            crate::text::clean_text(&format!("SMTP: {text}"), 400, self.password.as_deref());
        // A permanent SMTP reply (5xx) and a refusal of the client itself (no STARTTLS offered
        // where it is required, no usable login mechanism) will not pass by waiting.
        if e.is_permanent() || e.is_client() {
            SendOutcome::Permanent { error }
        } else {
            SendOutcome::Transient {
                error,
                retry_after: None,
            }
        }
    }
}

/// The TLS parameters of the settings (the built-in roots plus `ca_file`); `None` for a plain
/// local relay.
fn tls_parameters(s: &Settings) -> Result<Option<TlsParameters>, String> {
    if s.security == TlsMode::Plain {
        return Ok(None);
    }
    let mut params = TlsParameters::builder(s.host.clone());
    if let Some(pem) = &s.ca_pem {
        let cert = Certificate::from_pem(pem)
            .map_err(|e| format!("[email] ca_file holds no usable certificate: {e}"))?;
        params = params.add_root_certificate(cert);
    }
    params
        .build_rustls()
        .map(Some)
        .map_err(|e| format!("[email] cannot set up TLS: {e}"))
}

/// Reaches the SMTP server as a dispatch would, without sending anything: connect, EHLO,
/// STARTTLS or implicit TLS as configured, AUTH when a login is set, then QUIT. Each command
/// waits at most the smaller of `[email] timeout_secs` and `limit`, and the whole exchange at
/// most `limit`. `Ok` lists the steps done.
pub(crate) async fn probe(s: &Settings, limit: Duration) -> Result<String, super::ProbeFailure> {
    let mut done: Vec<String> = Vec::new();
    let exchange = probe_steps(s, s.timeout.min(limit), &mut done);
    let outcome = tokio::time::timeout(limit, exchange).await;
    let at = format!("{}:{}", s.host, s.port);
    match outcome {
        Ok(Ok(())) => Ok(format!("{at}: {}", done.join(", "))),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(super::ProbeFailure {
            step: "timeout",
            error: format!(
                "{at}: no complete answer within {} s (after: {})",
                limit.as_secs_f64(),
                if done.is_empty() {
                    "nothing".to_string()
                } else {
                    done.join(", ")
                }
            ),
            fix:
                "check [email] host and port, and that a firewall lets this machine reach the relay"
                    .into(),
        }),
    }
}

async fn probe_steps(
    s: &Settings,
    timeout: Duration,
    done: &mut Vec<String>,
) -> Result<(), super::ProbeFailure> {
    use lettre::transport::smtp::authentication::DEFAULT_MECHANISMS;
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    let at = format!("{}:{}", s.host, s.port);
    let secret = s.credentials.as_ref().map(|(_, p)| p.as_str());
    let text = |e: &lettre::transport::smtp::Error| {
        let mut t = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let c = cause.to_string();
            if !t.contains(&c) {
                t.push_str(": ");
                t.push_str(&c);
            }
            source = cause.source();
        }
        crate::text::clean_text(&t, 300, secret)
    };
    let fail = |step: &'static str, error: String, fix: &str| super::ProbeFailure {
        step,
        error: format!("{at}: {error}"),
        fix: fix.to_string(),
    };
    let tls_fix = "the relay's certificate is not trusted or does not name [email] host: set [email] ca_file to its CA (PEM), or use the host name the certificate names";
    let hello = s
        .hello_name
        .clone()
        .map(ClientId::Domain)
        .unwrap_or_default();
    let params = tls_parameters(s).map_err(|e| fail("tls", e, "correct [email] ca_file"))?;
    let implicit = s.security == TlsMode::Implicit;
    let wrapper = if implicit { params.clone() } else { None };
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        (s.host.as_str(), s.port),
        Some(timeout),
        &hello,
        wrapper,
        None,
    )
    .await
    .map_err(|e| {
        let certificate = text(&e).to_ascii_lowercase().contains("certificate");
        if e.is_tls() || certificate {
            fail("tls", format!("TLS from the first byte failed: {}", text(&e)), tls_fix)
        } else if e.is_timeout() {
            fail(
                "connect",
                format!("no answer within {} s: {}", timeout.as_secs_f64(), text(&e)),
                "check [email] host and port, and that a firewall lets this machine reach the relay",
            )
        } else {
            fail(
                "connect",
                text(&e),
                if implicit {
                    "check [email] host and port (465 for tls = \"tls\"), and that the relay speaks TLS from the first byte"
                } else {
                    "check [email] host and port (587 for STARTTLS, 25 for a local relay) and that the relay is running"
                },
            )
        }
    })?;
    done.push(if implicit {
        "connected with TLS".into()
    } else {
        "connected".into()
    });
    done.push("EHLO".into());
    if s.security == TlsMode::StartTls {
        if !conn.can_starttls() {
            conn.abort().await;
            return Err(fail(
                "starttls",
                "the server does not offer STARTTLS".into(),
                "set [email] tls = \"tls\" with the relay's implicit-TLS port (465), or tls = \"none\" only for a relay on this machine",
            ));
        }
        let params = params.expect("TLS parameters for STARTTLS");
        if let Err(e) = conn.starttls(params, &hello).await {
            conn.abort().await;
            let certificate = text(&e).to_ascii_lowercase().contains("certificate");
            return Err(if e.is_tls() || certificate {
                fail(
                    "starttls",
                    format!("STARTTLS failed: {}", text(&e)),
                    tls_fix,
                )
            } else {
                fail(
                    "starttls",
                    format!("STARTTLS failed: {}", text(&e)),
                    "check [email] tls and port against what the relay offers",
                )
            });
        }
        done.push("STARTTLS".into());
    }
    if let Some((user, pass)) = &s.credentials {
        let credentials = Credentials::new(user.clone(), pass.clone());
        if let Err(e) = conn.auth(DEFAULT_MECHANISMS, &credentials).await {
            conn.abort().await;
            return Err(fail(
                "auth",
                format!("login as {user:?} refused: {}", text(&e)),
                "check [email] username and the password in the variable named by [email] password_env",
            ));
        }
        done.push(format!("AUTH as {user}"));
    }
    match conn.quit().await {
        Ok(_) => done.push("QUIT".into()),
        Err(e) => done.push(format!("QUIT not acknowledged ({})", text(&e))),
    }
    Ok(())
}

/// Whether `host` is this machine.
fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads a CA file named by a setting (`None`: none).
pub(crate) fn read_ca_file(
    path: Option<&std::path::Path>,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    std::fs::read(path)
        .map(Some)
        .map_err(|e| format!("{key} {}: cannot read it: {e}", path.display()))
}

/// The value of the environment variable named by a setting; `None` when no name is given or
/// the variable is unset or empty. Never logged.
pub(crate) fn secret_from_env(name: Option<&str>, key: &str) -> Result<Option<String>, String> {
    let Some(name) = name else {
        return Ok(None);
    };
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "the environment variable {name} (named by {key}) is not valid UTF-8"
        )),
    }
}

/// The name of a variable for a message.
pub(crate) fn display_env(name: Option<&str>) -> &str {
    name.unwrap_or("(none: the setting is empty)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailOptions {
        EmailOptions::default()
    }

    #[test]
    fn settings_name_what_is_missing() {
        let e = Settings::new(&cfg()).err().unwrap();
        assert!(e.contains("[email] enabled"), "{e}");
        let mut c = cfg();
        c.enabled = true;
        let e = Settings::new(&c).err().unwrap();
        assert!(e.contains("[email] host"), "{e}");
        c.host = "smtp.example.com".into();
        let e = Settings::new(&c).err().unwrap();
        assert!(e.contains("[email] from"), "{e}");
        c.from = "Recon <recon@example.com>".into();
        assert!(Settings::new(&c).is_ok());
        c.tls = TlsMode::Plain;
        let e = Settings::new(&c).err().unwrap();
        assert!(
            e.contains("[email] tls") && e.contains("smtp.example.com"),
            "{e}"
        );
        c.host = "127.0.0.1".into();
        assert!(Settings::new(&c).is_ok());
        c.username = Some("robot".into());
        c.password_env = Some("BREAKDESK_TEST_UNSET_PASSWORD_VARIABLE".into());
        let e = Settings::new(&c).err().unwrap();
        assert!(
            e.contains("BREAKDESK_TEST_UNSET_PASSWORD_VARIABLE") && e.contains("password_env"),
            "{e}"
        );
        c.username = None;
        c.to = vec!["not an address".into()];
        let e = Settings::new(&c).err().unwrap();
        assert!(e.contains("[email] to"), "{e}");
    }

    #[test]
    fn local_hosts() {
        for h in ["localhost", "127.0.0.1", "::1", "[::1]", "127.0.0.2"] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["smtp.example.com", "10.0.0.1", "0.0.0.0"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
