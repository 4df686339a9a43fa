//! Unit tests of [`super`].

use super::*;
use std::cell::RefCell;

type Stored = HashMap<(Phys, Vec<u8>), Vec<u8>>;

/// Stored values in memory, counting the loads.
#[derive(Default)]
struct Mem {
    values: RefCell<Stored>,
    loads: RefCell<usize>,
}

impl Load for Mem {
    type Err = ();
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        *self.loads.borrow_mut() += 1;
        Ok(self.values.borrow().get(&(tree, key.to_vec())).cloned())
    }
}

impl Mem {
    fn commit(&self, o: &mut Overlay) -> usize {
        let changed = o.changed().unwrap();
        let n = changed.len();
        let mut v = self.values.borrow_mut();
        for (tree, key, value) in changed {
            match value {
                Some(value) => v.insert((tree, key), value),
                None => v.remove(&(tree, key)),
            };
        }
        n
    }
}

fn ok<T>(r: Result<T, PagedError<()>>) -> T {
    match r {
        Ok(v) => v,
        Err(PagedError::Corrupt(m)) => panic!("corrupt: {m}"),
        Err(PagedError::Load(())) => panic!("load failed"),
    }
}

#[test]
fn pages_and_buckets_round_trip() {
    let mut page = Page::default();
    page.entries
        .insert(7, (b"C-1".to_vec(), Body::Stored(b"{\"a\":1}".to_vec())));
    page.entries
        .insert(9, (b"C-2".to_vec(), Body::Stored(Vec::new())));
    let later: Later = std::sync::Arc::new(|| Ok(b"late".to_vec()));
    page.entries
        .insert(11, (b"C-3".to_vec(), Body::Later(later)));
    assert_eq!(Page::decode(&page.encode().unwrap()).unwrap(), page);
    let mut bucket = Bucket::default();
    bucket.insert(b"\x01k".to_vec(), b"v".to_vec());
    bucket.insert(b"\x02".to_vec(), Vec::new());
    bucket.insert(b"\x01a".to_vec(), b"x".to_vec());
    let mut read = Bucket::decode(&bucket.encode().unwrap()).unwrap();
    assert_eq!(read, bucket);
    // Changes over what was read: a removal, a replacement, a new entry in between.
    assert!(read.remove(b"\x01a"));
    assert!(!read.remove(b"\x01zz"));
    read.insert(b"\x01k".to_vec(), b"w".to_vec());
    read.insert(b"\x01b".to_vec(), b"y".to_vec());
    assert_eq!(read.get(b"\x01a"), None);
    assert_eq!(read.get(b"\x01k"), Some(&b"w"[..]));
    assert_eq!(
        read.with_prefix(b"\x01"),
        vec![(&b"\x01b"[..], &b"y"[..]), (&b"\x01k"[..], &b"w"[..])]
    );
    let again = Bucket::decode(&read.encode().unwrap()).unwrap();
    assert_eq!(again, read);
    assert_eq!(again.entries().len(), 3);
    let empty = Page::default().encode().unwrap();
    assert_eq!(Page::decode(&empty).unwrap(), Page::default());
}

#[test]
fn damaged_values_are_reported_not_panicked_on() {
    let mut page = Page::default();
    page.entries
        .insert(1, (b"C-1".to_vec(), Body::Stored(vec![b'x'; 500])));
    let bytes = page.encode().unwrap();
    for cut in [0, 1, 5, 12, bytes.len() - 1] {
        assert!(Page::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut wrong = bytes.clone();
    wrong[0] = 9;
    assert!(
        Page::decode(&wrong)
            .unwrap_err()
            .0
            .contains("unknown format 9")
    );
    // A header that claims 4 GB of records.
    let mut huge = vec![PAGE_FORMAT];
    huge.extend_from_slice(&1u32.to_le_bytes());
    huge.extend_from_slice(&1u64.to_le_bytes());
    huge.extend_from_slice(&0u32.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Page::decode(&huge).is_err());
    assert!(Bucket::from_raw(vec![5, 0, 0, 0, 1]).is_err());
    assert!(Bucket::decode(&[5, 0, 0, 0, 1]).is_err());
    let stored = Bucket::default().encode().unwrap();
    assert!(Bucket::decode(&stored[..stored.len() - 1]).is_err());
    let mut claims = stored.clone();
    claims[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Bucket::decode(&claims).is_err());
    // Two entries out of order.
    let mut unordered = Vec::new();
    put_u32(&mut unordered, 2);
    for k in [b"b", b"a"] {
        put_u32(&mut unordered, 1);
        unordered.extend_from_slice(k);
        put_u32(&mut unordered, 0);
    }
    assert!(
        Bucket::from_raw(unordered)
            .unwrap_err()
            .0
            .contains("out of order")
    );
}

#[test]
fn cases_get_slots_in_order_and_are_read_back_after_a_commit() {
    let mem = Mem::default();
    let mut o = Overlay::default();
    for i in 0..300u32 {
        let id = format!("C-{i:04}");
        ok(o.insert(
            &mem,
            Logical::Cases,
            id.as_bytes(),
            i.to_string().into_bytes(),
        ));
    }
    // Written again in the same transaction: the same slot.
    ok(o.insert(&mem, Logical::Cases, b"C-0001", b"one".to_vec()));
    let written = mem.commit(&mut o);
    // 3 pages (128 slots each), the counter and the buckets touched.
    assert!(written > 4, "{written}");
    let mut r = Overlay::default();
    let before = *mem.loads.borrow();
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-0001")).unwrap(), b"one");
    // Read again (and a neighbour on the same page): nothing is loaded twice.
    let once = *mem.loads.borrow() - before;
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-0001")).unwrap(), b"one");
    assert!(r.get(&mem, Logical::Cases, b"C-0000").is_ok());
    assert!(
        *mem.loads.borrow() - before <= once + 1,
        "a second bucket at most"
    );
    assert_eq!(once, 2, "the id's bucket and its page");
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-0299")).unwrap(), b"299");
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-9999")), None);
    assert!(ok(r.contains(&mem, Logical::Cases, b"C-0150")));
    // A new case after the commit takes the next slot, on the third page.
    ok(r.insert(&mem, Logical::Cases, b"C-new", b"n".to_vec()));
    assert_eq!(ok(r.slot(&mem, b"C-new")), Some(301));
    ok(r.remove(&mem, Logical::Cases, b"C-0002"));
    mem.commit(&mut r);
    let mut r = Overlay::default();
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-0002")), None);
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-new")).unwrap(), b"n");
}

#[test]
fn a_slot_whose_page_lacks_the_case_reads_as_none_and_another_case_there_is_damage() {
    let mem = Mem::default();
    let mut o = Overlay::default();
    ok(o.insert(&mem, Logical::Cases, b"C-1", b"one".to_vec()));
    mem.commit(&mut o);
    // The page as it was before the case was written (read between two trees' writes).
    let key = (Phys::Pages, page_key(0).to_vec());
    let page = mem.values.borrow().get(&key).cloned().unwrap();
    mem.values
        .borrow_mut()
        .insert(key.clone(), Page::default().encode().unwrap());
    let mut r = Overlay::default();
    assert_eq!(ok(r.get(&mem, Logical::Cases, b"C-1")), None);
    // Another case at its slot.
    let mut other = Page::decode(&page).unwrap();
    let (_, body) = other.entries.remove(&1).unwrap();
    other.entries.insert(1, (b"C-2".to_vec(), body));
    mem.values.borrow_mut().insert(key, other.encode().unwrap());
    let mut r = Overlay::default();
    assert!(matches!(
        r.get(&mem, Logical::Cases, b"C-1"),
        Err(PagedError::Corrupt(m)) if m.contains("holds case C-2")
    ));
}

#[test]
fn index_prefix_scans_read_one_bucket() {
    let mem = Mem::default();
    let mut o = Overlay::default();
    let tree = Logical::Index(IndexTag::BreakIndex);
    for (k, v) in [
        (&b"gl\0A|1\x002024-01-02"[..], &b"C-a"[..]),
        (b"gl\0A|1\x002024-01-05", b"C-b"),
        (b"gl\0A|1\0~open~C-b", b"C-b"),
        (b"gl\0A|2\x002024-01-02", b"C-c"),
    ] {
        ok(o.insert(&mem, tree, k, v.to_vec()));
    }
    mem.commit(&mut o);
    let mut r = Overlay::default();
    let found = ok(r.scan_bucket(&mem, IndexTag::BreakIndex, b"gl\0A|1\0")).unwrap();
    let keys: Vec<&[u8]> = found.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        vec![
            &b"gl\0A|1\x002024-01-02"[..],
            b"gl\0A|1\x002024-01-05",
            b"gl\0A|1\0~open~C-b"
        ]
    );
    // A prefix of the profile alone does not choose a bucket.
    assert!(ok(r.scan_bucket(&mem, IndexTag::BreakIndex, b"gl\0")).is_none());
    ok(r.remove(&mem, tree, b"gl\0A|1\0~open~C-b"));
    assert_eq!(ok(r.get(&mem, tree, b"gl\0A|1\0~open~C-b")), None);
    assert_eq!(
        ok(r.get(&mem, tree, b"gl\0A|2\x002024-01-02")).unwrap(),
        b"C-c"
    );
}

#[test]
fn events_are_paged_by_number() {
    let mem = Mem::default();
    let mut o = Overlay::default();
    for n in 1..=600u64 {
        ok(o.insert(
            &mem,
            Logical::Events,
            &n.to_be_bytes(),
            n.to_string().into_bytes(),
        ));
    }
    // Pages 0, 1 and 2.
    assert_eq!(mem.commit(&mut o), 3);
    let mut r = Overlay::default();
    assert_eq!(
        ok(r.get(&mem, Logical::Events, &511u64.to_be_bytes())).unwrap(),
        b"511"
    );
    assert!(matches!(
        r.get(&mem, Logical::Events, b"short"),
        Err(PagedError::Corrupt(_))
    ));
}

#[test]
fn a_cached_bucket_is_taken_only_while_its_stored_bytes_are_the_same() {
    let mem = Mem::default();
    let cache = BucketCache::default();
    let tickets = Logical::Index(IndexTag::Tickets);
    let mut o = Overlay::cached(Some(cache.clone()));
    ok(o.insert(&mem, tickets, b"T-1", b"C-1".to_vec()));
    ok(o.insert(&mem, Logical::Cases, b"C-1", b"one".to_vec()));
    mem.commit(&mut o);
    o.give_back();
    // The next overlay reads the bucket as it was written (from the cache).
    let mut next = Overlay::cached(Some(cache.clone()));
    assert_eq!(ok(next.get(&mem, tickets, b"T-1")).unwrap(), b"C-1");
    assert_eq!(ok(next.slot(&mem, b"C-1")), Some(1));
    next.give_back();
    // Someone else rewrites the bucket: what the cache holds is not what is stored any more.
    let mut other = Overlay::default();
    ok(other.insert(&mem, tickets, b"T-1", b"C-2".to_vec()));
    mem.commit(&mut other);
    let mut last = Overlay::cached(Some(cache));
    assert_eq!(ok(last.get(&mem, tickets, b"T-1")).unwrap(), b"C-2");
    assert_eq!(ok(last.slot(&mem, b"C-1")), Some(1));
}

/// Writing a batch at once (index entries put into their buckets on every core, pages filled
/// on every core) stores the same bytes as writing its values one after the other: a value
/// written twice keeps the later, a case written twice keeps one slot, and a stored case is
/// rewritten where it is.
#[test]
fn a_batch_written_at_once_stores_what_one_write_after_another_does() {
    let one = Mem::default();
    let all = Mem::default();
    // Cases stored before, in both.
    for mem in [&one, &all] {
        let mut o = Overlay::default();
        for i in 0..50u32 {
            ok(o.insert(
                mem,
                Logical::Cases,
                format!("C-old{i:03}").as_bytes(),
                vec![1],
            ));
        }
        mem.commit(&mut o);
    }
    let mut writes: Vec<(Logical, Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..400u32 {
        let id = format!("C-{i:04}").into_bytes();
        writes.push((Logical::Cases, id.clone(), format!("body {i}").into_bytes()));
        writes.push((
            Logical::Index(IndexTag::Tickets),
            format!("BRK-{i:06}").into_bytes(),
            id.clone(),
        ));
        writes.push((
            Logical::Index(IndexTag::BreakIndex),
            format!("gl\0A{}\0{i}", i % 37).into_bytes(),
            id,
        ));
        writes.push((
            Logical::Events,
            u64::from(i + 1).to_be_bytes().to_vec(),
            format!("event {i}").into_bytes(),
        ));
    }
    // Written again later in the batch: a new case, an index entry, an event, a stored case.
    writes.push((Logical::Cases, b"C-0007".to_vec(), b"body 7 again".to_vec()));
    writes.push((
        Logical::Index(IndexTag::Tickets),
        b"BRK-000009".to_vec(),
        b"C-other".to_vec(),
    ));
    writes.push((
        Logical::Events,
        3u64.to_be_bytes().to_vec(),
        b"event 2 again".to_vec(),
    ));
    writes.push((Logical::Cases, b"C-old010".to_vec(), b"rewritten".to_vec()));
    assert!(writes.len() > PARALLEL_BATCH);

    let mut o = Overlay::default();
    for (tree, key, value) in writes.clone() {
        ok(o.insert(&one, tree, &key, value));
    }
    one.commit(&mut o);
    let mut o = Overlay::default();
    let ready = writes
        .into_iter()
        .map(|(tree, key, value)| Ready::of(tree, key, value));
    ok(o.insert_ready(&all, ready));
    all.commit(&mut o);
    assert_eq!(*all.values.borrow(), *one.values.borrow());

    let mut r = Overlay::default();
    assert_eq!(
        ok(r.get(&all, Logical::Cases, b"C-0007")).unwrap(),
        b"body 7 again"
    );
    assert_eq!(
        ok(r.get(&all, Logical::Cases, b"C-old010")).unwrap(),
        b"rewritten"
    );
    assert_eq!(ok(r.slot(&all, b"C-old010")), Some(11));
    assert_eq!(ok(r.slot(&all, b"C-0000")), Some(51));
    assert_eq!(ok(r.slot(&all, b"C-0399")), Some(450));
    let ticket = ok(r.get(&all, Logical::Index(IndexTag::Tickets), b"BRK-000009"));
    assert_eq!(ticket.unwrap(), b"C-other");
    let event = ok(r.get(&all, Logical::Events, &3u64.to_be_bytes()));
    assert_eq!(event.unwrap(), b"event 2 again");
    // Looked up many at once, on every core: as one at a time.
    let ids: Vec<Vec<u8>> = (0..410u32)
        .map(|i| format!("C-{i:04}").into_bytes())
        .collect();
    let slots = ok(r.slots(&all, &ids));
    for (id, slot) in ids.iter().zip(&slots) {
        assert_eq!(*slot, ok(r.slot(&all, id)));
    }
    assert_eq!(slots.iter().filter(|s| s.is_none()).count(), 10);
    let prefixes: Vec<Vec<u8>> = (0..40u32)
        .map(|a| format!("gl\0A{a}\0").into_bytes())
        .collect();
    let scanned = ok(r.scan_many(&all, IndexTag::BreakIndex, &prefixes));
    for (p, found) in prefixes.iter().zip(scanned) {
        let one_scan = ok(r.scan_bucket(&all, IndexTag::BreakIndex, p));
        assert_eq!(found, one_scan);
    }
}
