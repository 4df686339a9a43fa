use super::*;

fn store() -> ColumnStore {
    let mut s = ColumnStore {
        rows: 5,
        ..Default::default()
    };
    s.cols.push(Column::num(
        "difference",
        "difference",
        Kind::Amount,
        vec![10.0, -2500.5, f64::NAN, 1e6, 3.0],
    ));
    s.cols.push(Column::text(
        "status",
        "status",
        TextCol::from_values(
            ["pending", "accepted", "pending", "", "Rejected"]
                .into_iter()
                .map(Some),
        ),
    ));
    s.known.difference = Some(0);
    s.known.status = Some(1);
    s.flagged = vec![true; 5];
    s
}

#[test]
fn sort_numbers_missing_last_both_ways() {
    let s = store();
    let mut rows: Vec<u32> = (0..5).collect();
    s.sort(&mut rows, 0, false);
    assert_eq!(rows, vec![1, 4, 0, 3, 2]);
    s.sort(&mut rows, 0, true);
    assert_eq!(rows, vec![3, 0, 4, 1, 2]);
}

#[test]
fn sort_text_case_insensitive_empty_last() {
    let s = store();
    let mut rows: Vec<u32> = (0..5).collect();
    s.sort(&mut rows, 1, false);
    assert_eq!(rows, vec![1, 0, 2, 4, 3]);
    s.sort(&mut rows, 1, true);
    assert_eq!(rows, vec![4, 0, 2, 1, 3]);
}

#[test]
fn filter_with_bare_status_word() {
    let s = store();
    let rows: Vec<u32> = (0..5).collect();
    let f = s.compile("difference > 5 and status = pending").unwrap();
    assert_eq!(s.filter(&rows, &f), vec![0]);
    let f = s.compile("abs(difference) > 1000").unwrap();
    assert_eq!(s.filter(&rows, &f), vec![1, 3]);
    let e = s.compile("amount > 3").unwrap_err();
    assert!(
        e.contains("amount") && e.contains("fields: difference, status"),
        "{e}"
    );
}

#[test]
fn set_text_adds_values() {
    let mut s = store();
    s.set_text(1, 3, "approved");
    assert_eq!(s.text(Some(1), 3), "approved");
    let rows: Vec<u32> = (0..5).collect();
    let f = s.compile("status = approved").unwrap();
    assert_eq!(s.filter(&rows, &f), vec![3]);
}

#[test]
fn rows_written_one_at_a_time_widen_their_columns() {
    let mut n = Column::num("diff", "diff", Kind::Amount, Vec::new());
    let mut t = Column::text("status", "status", TextCol::default());
    n.put_num(0, 12.5);
    t.put_text(0, "pending");
    n.put_num(1, 1_234_567.0);
    t.put_text(1, "accepted");
    assert_eq!(n.cell(1), "1,234,567.00");
    assert_eq!(n.width, 12);
    assert_eq!(t.width, 8);
    // Written again in place; a text column takes a number, a numeric one a text's number.
    t.put_text(0, "approved");
    n.put_text(0, "-3.25");
    assert_eq!((t.cell(0), n.cell(0)), ("approved".into(), "-3.25".into()));
    let Data::Text(tc) = &t.data else {
        panic!("text")
    };
    assert_eq!(tc.codes.len(), 2);
    t.put_num(2, 7.0);
    assert_eq!(t.cell(2), "7");
    n.retitle("Balance Difference");
    assert_eq!(n.width, 18);
}

#[test]
fn search_wraps_both_ways() {
    let s = store();
    let rows: Vec<u32> = (0..5).collect();
    assert_eq!(s.search(&rows, "PEND", 0, true), Some(2));
    assert_eq!(s.search(&rows, "pend", 2, true), Some(0));
    assert_eq!(s.search(&rows, "pend", 0, false), Some(2));
    assert_eq!(s.search(&rows, "2,500", 0, true), Some(1));
    assert_eq!(s.search(&rows, "nothing", 0, true), None);
}
