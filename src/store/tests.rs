//! Unit tests of [`super`].

use super::*;

/// Writes, with sled alone, a store as an older build left it: the schema `version` in
/// meta, the `trees` that version had (empty) and the `entries` (tree name, key, value).
fn old_store(dir: &Path, version: u32, trees: &[CaseTree], entries: &[(&str, &[u8], &[u8])]) {
    let db = sled::Config::new().path(dir.join("store")).open().unwrap();
    db.open_tree(META)
        .unwrap()
        .insert(b"schema_version", &version.to_be_bytes())
        .unwrap();
    for tree in trees {
        db.open_tree(tree.name()).unwrap();
    }
    for (tree, k, v) in entries {
        db.open_tree(tree).unwrap().insert(k, *v).unwrap();
    }
    db.flush().unwrap();
}

fn tree_names(db: &sled::Db) -> Vec<String> {
    db.tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).to_string())
        .collect()
}

#[test]
fn models_persist_across_reopen_with_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.put_model("gl_ihub", b"{\"x\":1}").unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"{\"x\":1}");
    assert_eq!(s.get_model("trades").unwrap(), None);
    assert_eq!(s.model_names().unwrap(), vec!["gl_ihub"]);
}

#[test]
fn views_persist_across_reopen_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        assert!(s.views().unwrap().is_empty());
        s.put_view("b", b"{}").unwrap();
        s.put_view("a", b"{\"sort\":\"x\"}").unwrap();
        s.put_view("a", b"{\"sort\":\"y\"}").unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(
        s.views().unwrap(),
        vec![
            ("a".to_string(), b"{\"sort\":\"y\"}".to_vec()),
            ("b".to_string(), b"{}".to_vec())
        ]
    );
    assert_eq!(s.get_view("b").unwrap().unwrap(), b"{}");
    assert!(s.delete_view("b").unwrap());
    assert!(!s.delete_view("b").unwrap());
    assert_eq!(s.get_view("b").unwrap(), None);
    assert_eq!(s.views().unwrap().len(), 1);
}

#[test]
fn a_second_open_while_held_says_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    // sled locks the database file; a second open from this process sees the same lock a
    // second process would.
    match Store::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert!(path.ends_with("store")),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected the second open to be refused"),
    }
}

#[test]
fn a_version_1_layout_is_migrated_with_its_models() {
    let dir = tempfile::tempdir().unwrap();
    // What version 1 wrote: the version in meta, models and cached answers, no case trees.
    old_store(dir.path(), 1, &[], &[(MODELS, b"gl_ihub", b"bundle")]);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"bundle");
    let names = tree_names(&s.db);
    for tree in CaseTree::RAW {
        assert!(
            names.iter().any(|n| n == tree.name()),
            "{tree:?} in {names:?}"
        );
    }
    for p in Phys::ALL {
        assert!(names.iter().any(|n| n == p.name()), "{p:?} in {names:?}");
    }
    // The trees schema 4 packs are gone once they are copied.
    for tree in CaseTree::PACKED {
        assert!(
            !names.iter().any(|n| n == tree.name()),
            "{tree:?} in {names:?}"
        );
    }
}

#[test]
fn a_version_2_store_gains_the_outbox_trees_and_keeps_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    // What version 2 wrote: the version in meta, a model and the case trees with content,
    // no outbox trees.
    old_store(
        dir.path(),
        2,
        &CaseTree::V2,
        &[
            (MODELS, b"gl_ihub", b"bundle"),
            ("cases", b"C-1", b"{}"),
            ("seq", b"ticket", &7u64.to_be_bytes()),
        ],
    );
    {
        let db = sled::Config::new()
            .path(dir.path().join("store"))
            .open()
            .unwrap();
        let names = tree_names(&db);
        assert!(!names.iter().any(|n| n == "outbox"), "{names:?}");
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.get_model("gl_ihub").unwrap().unwrap(), b"bundle");
    assert_eq!(s.case_get(CaseTree::Cases, b"C-1").unwrap().unwrap(), b"{}");
    assert_eq!(
        s.case_get(CaseTree::Seq, b"ticket").unwrap().unwrap(),
        7u64.to_be_bytes()
    );
    let names = tree_names(&s.db);
    for tree in CaseTree::V3 {
        assert!(
            names.iter().any(|n| n == tree.name()),
            "{tree:?} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "cases"), "{names:?}");
    // The new trees take part in case transactions at once.
    let r: Result<(), StoreError> = s.case_transaction(|txn| {
        txn.insert(CaseTree::Outbox, b"o", b"1")?;
        txn.insert(CaseTree::JiraKeys, b"k", b"RECON-1")?;
        Ok(())
    });
    r.unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.case_get(CaseTree::Outbox, b"o").unwrap().unwrap(), b"1");
    assert_eq!(
        s.case_get(CaseTree::JiraKeys, b"k").unwrap().unwrap(),
        b"RECON-1"
    );
}

#[test]
fn a_case_transaction_writes_all_or_nothing_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"a", b"1")?;
            txn.insert(CaseTree::Events, &7u64.to_be_bytes(), b"2")?;
            Ok(())
        });
        r.unwrap();
        let r: Result<(), StoreError> = s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"c", b"3")?;
            Err(TxError::Abort(StoreError::Engine("refused".into())))
        });
        assert_eq!(r.unwrap_err().to_string(), "store error: refused");
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.case_get(CaseTree::Cases, b"a").unwrap().unwrap(), b"1");
    assert_eq!(
        s.case_get(CaseTree::Events, &7u64.to_be_bytes())
            .unwrap()
            .unwrap(),
        b"2"
    );
    assert_eq!(s.case_get(CaseTree::Cases, b"c").unwrap(), None);
    let all: Vec<Entry> = s
        .case_scan(CaseTree::Cases, b"")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())]);
}

#[test]
fn a_version_3_store_is_packed_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"gl\0A|1\0~open~C-b".to_vec();
    let old = version_3_entries(&marker);
    // What version 3 wrote: one sled entry per key in every case tree.
    let entries: Vec<(&str, &[u8], &[u8])> = old
        .iter()
        .map(|(t, k, v)| (t.name(), k.as_slice(), v.as_slice()))
        .collect();
    old_store(dir.path(), 3, &CaseTree::ALL, &entries);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    for (tree, k, v) in &old {
        assert_eq!(
            s.case_get(*tree, k).unwrap().as_ref(),
            Some(v),
            "{tree:?} {}",
            String::from_utf8_lossy(k)
        );
    }
    // Cases in ticket order (the order they were opened), then the one without a ticket.
    let ids = scan_keys(&s, CaseTree::Cases, b"");
    assert_eq!(
        ids,
        vec![b"C-b".to_vec(), b"C-a".to_vec(), b"C-orphan".to_vec()]
    );
    // Scans by account and across the profile find the same entries as before.
    let account = scan_keys(&s, CaseTree::BreakIndex, b"gl\0A|1\0");
    assert_eq!(
        account,
        vec![b"gl\0A|1\x002024-01-01".to_vec(), marker.clone()]
    );
    let profile = scan_keys(&s, CaseTree::BreakIndex, b"gl\0");
    assert_eq!(profile.len(), 3);
    let events: Vec<Vec<u8>> = s
        .case_scan(CaseTree::Events, b"")
        .unwrap()
        .map(|kv| kv.unwrap().1)
        .collect();
    assert_eq!(events, vec![b"{\"e\":1}".to_vec(), b"{\"e\":2}".to_vec()]);
    let names = tree_names(&s.db);
    for tree in CaseTree::PACKED {
        assert!(
            !names.iter().any(|n| n == tree.name()),
            "{tree:?} in {names:?}"
        );
    }
    // A new case after the migration takes the next slot.
    let r: Result<(), StoreError> = s.case_transaction(|txn| {
        txn.insert(CaseTree::Cases, b"C-new", b"{}")?;
        Ok(())
    });
    r.unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    let ids = scan_keys(&s, CaseTree::Cases, b"");
    assert_eq!(ids.last().unwrap(), b"C-new");
    assert_eq!(ids.len(), 4);
}

/// What version 3 held in its case trees (`marker`: an outstanding marker of case C-b).
fn version_3_entries(marker: &[u8]) -> Vec<(CaseTree, Vec<u8>, Vec<u8>)> {
    vec![
        (CaseTree::Cases, b"C-a".to_vec(), b"{\"n\":1}".to_vec()),
        (CaseTree::Cases, b"C-b".to_vec(), b"{\"n\":2}".to_vec()),
        (CaseTree::Cases, b"C-orphan".to_vec(), b"{}".to_vec()),
        (
            CaseTree::Tickets,
            b"BRK-20240102-000002".to_vec(),
            b"C-a".to_vec(),
        ),
        (
            CaseTree::Tickets,
            b"BRK-20240101-000001".to_vec(),
            b"C-b".to_vec(),
        ),
        (
            CaseTree::BreakIndex,
            b"gl\0A|1\x002024-01-01".to_vec(),
            b"C-b".to_vec(),
        ),
        (
            CaseTree::BreakIndex,
            b"gl\0A|2\x002024-01-02".to_vec(),
            b"C-a".to_vec(),
        ),
        (CaseTree::BreakIndex, marker.to_vec(), b"C-b".to_vec()),
        (
            CaseTree::Events,
            1u64.to_be_bytes().to_vec(),
            b"{\"e\":1}".to_vec(),
        ),
        (
            CaseTree::Events,
            2u64.to_be_bytes().to_vec(),
            b"{\"e\":2}".to_vec(),
        ),
        (
            CaseTree::CaseEvents,
            [&b"C-b\0"[..], &1u64.to_be_bytes()].concat(),
            Vec::new(),
        ),
        (
            CaseTree::CaseEvents,
            [&b"C-a\0"[..], &2u64.to_be_bytes()].concat(),
            Vec::new(),
        ),
        (
            CaseTree::Feedback,
            b"C-a".to_vec(),
            b"{\"label\":true}".to_vec(),
        ),
        (
            CaseTree::Seq,
            b"ticket".to_vec(),
            2u64.to_be_bytes().to_vec(),
        ),
    ]
}

/// The keys under `prefix` in a case tree, in order.
fn scan_keys(s: &Store, tree: CaseTree, prefix: &[u8]) -> Vec<Vec<u8>> {
    s.case_scan(tree, prefix)
        .unwrap()
        .map(|kv| kv.unwrap().0)
        .collect()
}

#[test]
fn a_damaged_page_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let r: Result<(), StoreError> = s.case_transaction(|txn| {
        txn.insert(CaseTree::Cases, b"C-1", b"{}")?;
        Ok(())
    });
    r.unwrap();
    let pages = s.db.open_tree(Phys::Pages.name()).unwrap();
    let (k, v) = pages.iter().next().unwrap().unwrap();
    pages.insert(k, &v[..v.len() / 2]).unwrap();
    let e = s.case_get(CaseTree::Cases, b"C-1").unwrap_err().to_string();
    assert!(e.contains("page"), "{e}");
    let r: Result<(), StoreError> = s.case_transaction(|txn| {
        txn.insert(CaseTree::Cases, b"C-1", b"{\"n\":1}")?;
        Ok(())
    });
    let e = r.unwrap_err().to_string();
    assert!(e.contains("page"), "{e}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        let meta = s.db.open_tree(META).unwrap();
        meta.insert(b"schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        s.db.flush().unwrap();
    }
    let e = Store::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("newer breakdesk"), "{e}");
}

#[test]
fn a_schema_4_store_opens_as_the_current_schema_with_its_cases_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.case_transaction(|txn| {
            txn.insert(CaseTree::Cases, b"C-1", b"{\"n\":1}")?;
            Ok::<(), TxError<StoreError>>(())
        })
        .unwrap();
        let meta = s.db.open_tree(META).unwrap();
        meta.insert(b"schema_version", &4u32.to_be_bytes()).unwrap();
        s.db.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        s.case_get(CaseTree::Cases, b"C-1").unwrap().as_deref(),
        Some(&b"{\"n\":1}"[..])
    );
}
