//! The case workflow through the real binary: `run` opens one case per anomaly (idempotently),
//! `cases decide` enforces the status machine and maker-checker with clear errors, and `audit`
//! and `export` read what was decided — across separate processes, so across store reopenings.

use crate::support::common;

use common::{column as col, read_csv};
use std::path::Path;

fn bd(data: &Path, args: &[&str]) -> (i32, String, String) {
    bd_as(data, "os-user", args)
}

/// `breakdesk ARGS` run by the OS user `user` (who acts on cases), with `sue` listed as a
/// supervisor in the user config file.
fn bd_as(data: &Path, user: &str, args: &[&str]) -> (i32, String, String) {
    let config = data.join("home/config/breakdesk");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[roles]\nsupervisors = [\"sue\"]\n",
    )
    .unwrap();
    let mut c = common::breakdesk_cmd(data, &data.join("data"));
    c.env("USER", user).args(args);
    common::outcome(c)
}

fn run_sample(d: &Path, out: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let (code, _, err) = bd(
        d,
        &[
            "run",
            root.join("gl_ihub_current.csv").to_str().unwrap(),
            "--history",
            root.join("gl_ihub_history.csv").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");
    read_csv(out)
}

#[test]
fn run_opens_cases_once_and_decisions_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (h, rows) = run_sample(d, &d.join("a.csv"));
    let tickets = col(&h, &rows, "ticket");
    let ids = col(&h, &rows, "case_id");
    let status = col(&h, &rows, "case_status");
    let auto = col(&h, &rows, "auto_resolve");
    assert!(!rows.is_empty());
    for i in 0..rows.len() {
        assert!(
            tickets[i].starts_with("BRK-") && tickets[i].len() == 19,
            "{}",
            tickets[i]
        );
        assert!(ids[i].starts_with("C-"));
        // Rules only propose: an auto-resolvable bucket waits for a supervisor.
        let want = if auto[i] == "true" {
            "AutoResolveProposed"
        } else {
            "PendingReview"
        };
        assert_eq!(status[i], want, "row {i}");
    }
    // One case per break: the records of a break on several days share its case.
    let keys = col(&h, &rows, "bd_key");
    let mut by_ticket: std::collections::HashMap<&str, &str> = Default::default();
    for i in 0..rows.len() {
        let k = by_ticket.entry(tickets[i]).or_insert(keys[i]);
        assert_eq!(*k, keys[i], "ticket {} spans two accounts", tickets[i]);
    }
    assert!(by_ticket.len() > 1 && by_ticket.len() <= rows.len());
    let (_, audit_before, _) = bd(d, &["audit"]);

    // Re-running the same files opens no new case and writes no event.
    let (h2, rows2) = run_sample(d, &d.join("b.csv"));
    assert_eq!(col(&h2, &rows2, "ticket"), tickets);
    let (_, audit_after, _) = bd(d, &["audit"]);
    assert_eq!(audit_before, audit_after);

    let pending = (0..rows.len())
        .find(|i| status[*i] == "PendingReview")
        .expect("a pending case");
    let proposed = (0..rows.len())
        .find(|i| status[*i] == "AutoResolveProposed")
        .expect("a proposed case");
    let (p, q) = (tickets[pending], tickets[proposed]);

    // Reject without a reason: refused (exit 6), nothing recorded.
    let (code, _, err) = bd_as(d, "ann", &["cases", "decide", p, "reject"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("needs a reason"), "{err}");
    let (code, out, err) = bd_as(
        d,
        "ann",
        &["cases", "decide", p, "reject", "--reason", "known timing"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-> Rejected"), "{out}");
    // Illegal transition names the legal ones.
    let (code, _, err) = bd_as(d, "ann", &["cases", "decide", p, "accept"]);
    assert_eq!(code, 6);
    assert!(
        err.contains("is Rejected") && err.contains("allowed: reopen"),
        "{err}"
    );
    // An analyst cannot approve; a supervisor can.
    let (code, _, err) = bd_as(d, "ann", &["cases", "decide", q, "approve"]);
    assert_eq!(code, 6);
    assert!(err.to_lowercase().contains("supervisor"), "{err}");
    let (code, _, err) = bd_as(
        d,
        "sue",
        &["cases", "decide", q, "approve", "--role", "supervisor"],
    );
    assert_eq!(code, 0, "{err}");
    // A supervisor never approves their own proposal.
    let (code, _, err) = bd_as(
        d,
        "sue",
        &["cases", "decide", q, "reopen", "--reason", "check again"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bd_as(
        d,
        "sue",
        &["cases", "decide", q, "propose", "--role", "supervisor"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bd_as(
        d,
        "sue",
        &["cases", "decide", q, "approve", "--role", "supervisor"],
    );
    assert_eq!(code, 6);
    assert!(
        err.contains("maker-checker") && err.contains("cannot also approve"),
        "{err}"
    );
    // Unknown case and unknown action.
    let (code, _, err) = bd(d, &["cases", "decide", "BRK-20990101-999999", "accept"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = bd(d, &["cases", "decide", p, "frobnicate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value 'frobnicate'")
            && err.contains("[possible values: accept, reject, propose, approve, return, reopen]"),
        "{err}"
    );

    // The next run: the break rejected as normal persists unchanged, so it stays quiet (not
    // flagged, not written); the case keeps its decision.
    let (h3, rows3) = run_sample(d, &d.join("c.csv"));
    let t3 = col(&h3, &rows3, "ticket");
    assert!(
        !t3.contains(&p),
        "a break judged normal is not flagged again"
    );
    let (code, out, err) = bd(d, &["cases", "show", p]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Rejected"), "{out}");

    // The audit trail of the case, in order, with who, role and reason.
    let (code, out, _) = bd(d, &["audit", "--case", p]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("seq,at,user,role,case_id"));
    assert!(lines[1].contains(",create,"), "{out}");
    assert!(
        lines[2].contains(",ann,analyst,")
            && lines[2].contains(",reject,PendingReview,Rejected,known timing,"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "refused decisions are not recorded: {out}");
    let (_, jsonl, _) = bd(d, &["audit", "--format", "jsonl"]);
    for l in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["seq"].is_u64() && v["case_id"].is_string());
    }

    // Export of the rejected cases carries the record's own columns.
    let ex = d.join("rejected.csv");
    let (code, _, err) = bd(
        d,
        &[
            "export",
            "--status",
            "rejected",
            "--out",
            ex.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (eh, erows) = read_csv(&ex);
    assert_eq!(erows.len(), 1);
    assert_eq!(col(&eh, &erows, "ticket"), vec![p]);
    assert!(eh.contains(&"GL Balance".to_string()));

    // `cases list --status pending` and `cases show`.
    let (code, out, _) = bd(
        d,
        &["cases", "list", "--status", "pending", "--format", "csv"],
    );
    assert_eq!(code, 0);
    assert!(!out.contains(p));
    let (code, out, _) = bd(d, &["cases", "show", p]);
    assert_eq!(code, 0);
    assert!(
        out.contains("legal now: reopen") && out.contains("known timing"),
        "{out}"
    );
}

/// Maker-checker holds only if nobody chooses their own role or name: the role must be granted
/// in `[roles]`, and the acting user is the OS user unless the configuration allows otherwise.
#[test]
fn roles_and_names_come_from_the_configuration_not_from_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (h, rows) = run_sample(d, &d.join("a.csv"));
    let status = col(&h, &rows, "case_status");
    let tickets = col(&h, &rows, "ticket");
    let q = (0..rows.len())
        .find(|i| status[*i] == "AutoResolveProposed")
        .map(|i| tickets[i])
        .expect("a proposed case");
    let (_, audit_before, _) = bd(d, &["audit"]);

    // ann is not a supervisor: asking for the role is refused, whatever she types.
    let (code, _, err) = bd_as(
        d,
        "ann",
        &["cases", "decide", q, "approve", "--role", "supervisor"],
    );
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("\"ann\" may not act as supervisor") && err.contains("[roles] supervisors"),
        "{err}"
    );
    // Nor may she act under sue's name, by flag or by her config file.
    let (code, _, err) = bd_as(
        d,
        "ann",
        &[
            "cases",
            "decide",
            q,
            "approve",
            "--role",
            "supervisor",
            "--user",
            "sue",
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("acting as \"sue\" is refused") && err.contains("allow_user_override"),
        "{err}"
    );
    let config = d.join("own.toml");
    std::fs::write(
        &config,
        "[general]\nuser = \"sue\"\nrole = \"supervisor\"\n[roles]\nsupervisors = [\"sue\"]\n",
    )
    .unwrap();
    let (code, _, err) = bd_as(
        d,
        "ann",
        &[
            "--config",
            config.to_str().unwrap(),
            "cases",
            "decide",
            q,
            "approve",
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("acting as \"sue\" is refused"), "{err}");
    // Nothing of that was recorded.
    let (_, audit_after, _) = bd(d, &["audit"]);
    assert_eq!(audit_before, audit_after);

    // With an analysts list, somebody on neither list may not act at all; a listed analyst may.
    std::fs::write(
        &config,
        "[roles]\nsupervisors = [\"sue\"]\nanalysts = [\"ann\"]\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let (code, _, err) = bd_as(
        d,
        "eve",
        &[
            "--config", cfg, "cases", "decide", q, "return", "--reason", "x",
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("\"eve\" may not act as analyst"), "{err}");
    // The supervisor listed acts as supervisor, and the audit trail names her and the role.
    let (code, out, err) = bd_as(
        d,
        "sue",
        &[
            "--config",
            cfg,
            "cases",
            "decide",
            q,
            "approve",
            "--role",
            "supervisor",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-> Approved"), "{out}");
    let (_, trail, _) = bd(d, &["audit", "--case", q]);
    assert!(trail.contains(",sue,supervisor,"), "{trail}");
    // Where the configuration allows it, --user names the person (a shared operations account).
    std::fs::write(
        &config,
        "[roles]\nsupervisors = [\"sue\"]\nallow_user_override = true\n",
    )
    .unwrap();
    let (code, _, err) = bd_as(
        d,
        "ops",
        &[
            "--config",
            cfg,
            "cases",
            "decide",
            q,
            "reopen",
            "--user",
            "ann",
            "--reason",
            "check again",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, trail, _) = bd(d, &["audit", "--case", q]);
    assert!(trail.contains(",ann,analyst,"), "{trail}");
}

/// `breakdesk ARGS` by `user`, with `sue` a supervisor and `extra` in the user config file.
fn bd_cfg(data: &Path, user: &str, extra: &str, args: &[&str]) -> (i32, String, String) {
    let config = data.join("home/config/breakdesk");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!("[roles]\nsupervisors = [\"sue\"]\n{extra}"),
    )
    .unwrap();
    let mut c = common::breakdesk_cmd(data, &data.join("data"));
    c.env("USER", user).args(args);
    common::outcome(c)
}

fn listed(data: &Path, user: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["cases", "list", "--format", "jsonl"];
    all.extend_from_slice(args);
    let (code, out, err) = bd_cfg(data, user, ROUTES, &all);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Cases of company 02100 go to raj; a route over a column no record has matches nothing.
const ROUTES: &str = "[[cases.routes]]\nowner = \"raj\"\nwhen = \"Company = '02100'\"\n\
                      [[cases.routes]]\nowner = \"nobody\"\nwhen = \"Region = 'EU'\"\n";

#[test]
fn owners_notes_due_dates_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let out = d.join("out.csv");
    let (code, _, err) = bd_cfg(
        d,
        "ann",
        ROUTES,
        &[
            "run",
            root.join("gl_ihub_current.csv").to_str().unwrap(),
            "--history",
            root.join("gl_ihub_history.csv").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(code, 0, "{err}");

    // Routed: every case of company 02100 is raj's, by the rules, and only those.
    let all = listed(d, "ann", &[]);
    assert!(all.len() > 2);
    let routed: Vec<&serde_json::Value> = all
        .iter()
        .filter(|c| c["key"].as_str().unwrap().starts_with("02100|"))
        .collect();
    assert!(!routed.is_empty(), "the sample has cases of company 02100");
    for c in &all {
        let want = c["key"].as_str().unwrap().starts_with("02100|");
        assert_eq!(
            c.get("owner").and_then(|o| o.as_str()) == Some("raj"),
            want,
            "{c}"
        );
        // Every case has a due date (opened today plus its severity's days).
        assert!(c["due"].as_str().is_some(), "{c}");
    }
    assert_eq!(listed(d, "raj", &["--mine"]).len(), routed.len());
    let t = routed[0]["ticket"].as_str().unwrap().to_string();
    let (_, audit, _) = bd_cfg(d, "ann", ROUTES, &["audit", "--case", &t]);
    assert!(
        audit.contains(",rules,") && audit.contains("raj (route: Company = '02100')"),
        "{audit}"
    );

    // Nothing is overdue on the day cases open (the shortest SLA is one day).
    assert!(listed(d, "ann", &["--overdue"]).is_empty());

    // An analyst takes an unowned case, cannot take raj's, nor give one to someone else.
    let free = all.iter().find(|c| c.get("owner").is_none()).unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = bd_cfg(d, "ann", ROUTES, &["cases", "take", &free]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("owner ann"), "{out}");
    let (code, _, err) = bd_cfg(d, "ann", ROUTES, &["cases", "take", &t]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("raj's") && err.contains("supervisor"), "{err}");
    let (code, _, err) = bd_cfg(d, "ann", ROUTES, &["cases", "assign", &free, "bob"]);
    assert_eq!(code, 6, "{err}");
    // A supervisor reassigns raj's case to ann; raj cannot release it any more, ann can.
    let (code, _, err) = bd_cfg(
        d,
        "sue",
        ROUTES,
        &["cases", "assign", &t, "ann", "--role", "supervisor"],
    );
    assert_eq!(code, 0, "{err}");
    let mine: Vec<String> = listed(d, "ann", &["--owner", "ann"])
        .iter()
        .map(|c| c["ticket"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.contains(&t) && mine.contains(&free));
    let (code, _, err) = bd_cfg(d, "raj", ROUTES, &["cases", "release", &t]);
    assert_eq!(code, 6, "{err}");
    let (code, _, err) = bd_cfg(d, "ann", ROUTES, &["cases", "release", &t]);
    assert_eq!(code, 0, "{err}");

    // A note is kept with its author and is no decision; an empty one is refused.
    let status_before = listed(d, "ann", &[])
        .into_iter()
        .find(|c| c["ticket"] == free.as_str())
        .unwrap()["status"]
        .clone();
    let (code, _, err) = bd_cfg(
        d,
        "ann",
        ROUTES,
        &[
            "cases",
            "note",
            &free,
            "called the IHub team, fix due Monday",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bd_cfg(d, "ann", ROUTES, &["cases", "note", &free, "  "]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("must not be empty"), "{err}");
    let (_, shown, _) = bd_cfg(d, "ann", ROUTES, &["cases", "show", &free]);
    assert!(
        shown.contains("called the IHub team, fix due Monday"),
        "{shown}"
    );
    let after = listed(d, "ann", &[])
        .into_iter()
        .find(|c| c["ticket"] == free.as_str())
        .unwrap();
    assert_eq!(after["status"], status_before, "a note changes no status");
    let (_, audit, _) = bd_cfg(d, "ann", ROUTES, &["audit", "--case", &free]);
    let kinds: Vec<&str> = audit
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(6))
        .collect();
    assert!(kinds.ends_with(&["assign", "note"]), "{audit}");

    // The CSV list has the new columns.
    let (code, csv, err) = bd_cfg(d, "ann", ROUTES, &["cases", "list", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let header = csv.lines().next().unwrap();
    for c in ["age_days", "cleared_on", "due", "overdue", "owner"] {
        assert!(header.split(',').any(|h| h == c), "{c} in {header}");
    }

    // A route that does not compile stops the command and names it.
    let (code, _, err) = bd_cfg(
        d,
        "ann",
        "[[cases.routes]]\nowner = \"x\"\nwhen = \"Company = \"\n",
        &["cases", "list"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cases.routes[0].when"), "{err}");
}
