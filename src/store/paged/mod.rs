//! The packed layout of the case trees (schema 4).
//!
//! sled spends about 10 µs on every value it writes, whatever its size, so a store that keeps
//! each case, ticket, index entry and event under its own key cannot record 100,000 cases in
//! under a second. Here the case workflow's trees are logical: their entries are packed many to
//! a stored value, and a transaction reads each stored value once, changes it in memory and
//! writes it once.
//!
//! - **Cases** (`case_pages`): each case has a slot, handed out in the order the cases are first
//!   written; a page holds the cases of 128 consecutive slots (ids and stored bodies), its bodies
//!   compressed together (zstd). A run's new cases fill new pages; a case written again rewrites
//!   the page it is on.
//! - **Events** (`event_pages`): 256 consecutive event numbers a page, compressed the same way.
//! - **Index entries** (`case_index`): the case id → slot map, tickets, the break index and the
//!   events of each case, in 1,024 buckets by a hash of the part of the key a lookup always
//!   knows (the whole ticket or case id; the profile and account of a break; the case of an
//!   event), so that a lookup or a prefix scan reads one bucket.
//!
//! Nothing here knows what a case is: keys and values stay the business of `crate::cases`.

use std::collections::{BTreeMap, HashMap};

mod bucket;

pub(crate) use bucket::Bucket;

/// Slots of one case page.
pub(crate) const CASES_PER_PAGE: u64 = 128;
/// Event numbers of one event page.
pub(crate) const EVENTS_PER_PAGE: u64 = 256;
/// Buckets of the index.
pub(crate) const BUCKETS: u64 = 1024;
/// zstd's fastest regular level (it shrank JSON pages about fivefold).
const ZSTD_LEVEL: i32 = 1;
/// The key of the next free slot in the index tree (bucket keys are 8 bytes).
const NEXT_SLOT: &[u8] = b"next_slot";
/// The most record bytes one page may hold (a bound for damaged headers, far above 128 cases).
const MAX_PAGE_BYTES: usize = 1 << 30;
/// The fewest stored values an overlay holds for [`Overlay::drop_aside`] to drop it on another
/// thread.
const DROP_ASIDE_FROM: usize = 64;
/// The fewest index entries [`Overlay::insert_ready`] puts into their buckets on every core.
const PARALLEL_BATCH: usize = 512;
/// The version byte that starts every index bucket.
const BUCKET_FORMAT: u8 = 1;
/// The version byte that starts every page.
const PAGE_FORMAT: u8 = 1;

/// The sled trees of the packed layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Phys {
    Pages,
    Index,
    Events,
}

impl Phys {
    pub(crate) const ALL: [Phys; 3] = [Phys::Pages, Phys::Index, Phys::Events];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Phys::Pages => "case_pages",
            Phys::Index => "case_index",
            Phys::Events => "event_pages",
        }
    }
}

/// Where a logical tree's entries are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Logical {
    /// Case pages, by slot (case id → slot in the index).
    Cases,
    /// Event pages, by the big-endian event number that is the key.
    Events,
    /// Index buckets; the tag starts the entry's key inside its bucket.
    Index(IndexTag),
}

/// The logical trees kept in the index buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IndexTag {
    /// case id → slot (big-endian u64).
    Slot = 1,
    Tickets = 2,
    BreakIndex = 3,
    CaseEvents = 4,
}

impl IndexTag {
    /// How many NUL-ended fields of a key choose its bucket (0: the whole key).
    fn fields(self) -> usize {
        match self {
            IndexTag::Slot | IndexTag::Tickets => 0,
            IndexTag::CaseEvents => 1,
            IndexTag::BreakIndex => 2,
        }
    }

    /// The part of `key` that chooses its bucket, if `key` (or a prefix) holds all of it.
    fn hashed(self, key: &[u8], whole: bool) -> Option<&[u8]> {
        let n = self.fields();
        if n == 0 {
            return whole.then_some(key);
        }
        let mut seen = 0;
        for (i, b) in key.iter().enumerate() {
            if *b == 0 {
                seen += 1;
                if seen == n {
                    return Some(&key[..=i]);
                }
            }
        }
        // A whole key with fewer fields than usual is hashed whole.
        whole.then_some(key)
    }

    /// The bucket of an entry's key.
    fn bucket(self, key: &[u8]) -> u64 {
        bucket_of(self, self.hashed(key, true).unwrap_or(key))
    }

    /// The one bucket every key starting with `prefix` is in, if there is one.
    fn bucket_of_prefix(self, prefix: &[u8]) -> Option<u64> {
        self.hashed(prefix, false).map(|h| bucket_of(self, h))
    }
}

fn bucket_of(tag: IndexTag, hashed: &[u8]) -> u64 {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ tag as u64;
    for b in hashed {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % BUCKETS
}

/// A stored value that cannot be read.
#[derive(Debug)]
pub(crate) struct Corrupt(pub(crate) String);

/// A failure reading the stored values: the engine's, or a value that cannot be decoded.
pub(crate) enum PagedError<E> {
    Load(E),
    Corrupt(String),
}

impl<E> From<Corrupt> for PagedError<E> {
    fn from(c: Corrupt) -> Self {
        PagedError::Corrupt(c.0)
    }
}

/// Reads one stored value of the packed layout.
pub(crate) trait Load {
    type Err;
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Err>;
}

// ---------------------------------------------------------------------------------------------
// Stored values

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Cursor { bytes, at: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(Corrupt(format!(
                "{} ends early ({} bytes, {} more needed at byte {})",
                self.what,
                self.bytes.len(),
                n,
                self.at
            ))),
        }
    }

    fn u32(&mut self) -> Result<u32, Corrupt> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Corrupt> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// A value that is encoded when its page is written (in parallel with the other pages), not
/// when it is inserted.
pub(crate) type Later = std::sync::Arc<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

/// The value of a page entry: as stored, or still to be encoded.
#[derive(Clone)]
pub(crate) enum Body {
    Stored(Vec<u8>),
    /// A body as read with its page: its place in the page's decompressed records, shared by
    /// the page's entries (a page read is not copied entry by entry).
    InPage(std::sync::Arc<Vec<u8>>, std::ops::Range<usize>),
    Later(Later),
}

impl Body {
    pub(crate) fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, Corrupt> {
        match self {
            Body::Stored(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Body::InPage(page, at) => Ok(std::borrow::Cow::Borrowed(&page[at.clone()])),
            Body::Later(f) => f()
                .map(std::borrow::Cow::Owned)
                .map_err(|e| Corrupt(format!("a value cannot be encoded: {e}"))),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Stored(b) => write!(f, "Stored({} bytes)", b.len()),
            Body::InPage(_, at) => write!(f, "InPage({} bytes)", at.len()),
            Body::Later(_) => write!(f, "Later"),
        }
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        match (self.bytes(), other.bytes()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// The entries of one case page (slot → case id and body) or event page (event number → empty
/// id and body).
#[derive(Default, Debug, Clone, PartialEq)]
pub(crate) struct Page {
    pub(crate) entries: BTreeMap<u64, (Vec<u8>, Body)>,
}

impl Page {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Page, Corrupt> {
        let mut c = Cursor::new(bytes, "a page");
        let format = c.take(1)?[0];
        if format != PAGE_FORMAT {
            return Err(Corrupt(format!("a page of unknown format {format}")));
        }
        let n = c.u32()? as usize;
        let mut heads = Vec::with_capacity(n.min(4096));
        let mut total = 0usize;
        for _ in 0..n {
            let slot = c.u64()?;
            let il = c.u32()? as usize;
            let id = c.take(il)?.to_vec();
            let bl = c.u32()? as usize;
            total = total.saturating_add(bl);
            heads.push((slot, id, bl));
        }
        if total > MAX_PAGE_BYTES {
            return Err(Corrupt(format!(
                "a page claims {total} bytes of records (at most {MAX_PAGE_BYTES})"
            )));
        }
        let bodies = with_zstd(|z| z.1.decompress(c.rest(), total))
            .map_err(|e| Corrupt(format!("a page's records cannot be decompressed: {e}")))?;
        if bodies.len() != total {
            return Err(Corrupt(format!(
                "a page's records hold {} bytes, its header says {total}",
                bodies.len()
            )));
        }
        let bodies = std::sync::Arc::new(bodies);
        let mut entries = BTreeMap::new();
        let mut at = 0;
        for (slot, id, bl) in heads {
            entries.insert(slot, (id, Body::InPage(bodies.clone(), at..at + bl)));
            at += bl;
        }
        Ok(Page { entries })
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, Corrupt> {
        let mut lens = Vec::with_capacity(self.entries.len());
        let mut bodies = Vec::new();
        for (_, body) in self.entries.values() {
            let b = body.bytes()?;
            lens.push(b.len());
            bodies.extend_from_slice(&b);
        }
        let total = bodies.len();
        if total > MAX_PAGE_BYTES {
            return Err(Corrupt(format!(
                "a page would hold {total} bytes of records (at most {MAX_PAGE_BYTES})"
            )));
        }
        let packed = with_zstd(|z| z.0.compress(&bodies))
            .map_err(|e| Corrupt(format!("a page cannot be compressed: {e}")))?;
        let mut out = Vec::with_capacity(packed.len() + 5 + self.entries.len() * 32);
        out.push(PAGE_FORMAT);
        put_u32(&mut out, self.entries.len());
        for ((slot, (id, _)), len) in self.entries.iter().zip(lens) {
            out.extend_from_slice(&slot.to_le_bytes());
            put_u32(&mut out, id.len());
            out.extend_from_slice(id);
            put_u32(&mut out, len);
        }
        out.extend_from_slice(&packed);
        Ok(out)
    }
}

type Zstd = (
    zstd::bulk::Compressor<'static>,
    zstd::bulk::Decompressor<'static>,
);

thread_local! {
    /// zstd's contexts, one pair per thread: a context takes about a megabyte to set up.
    static ZSTD: std::cell::RefCell<Option<Zstd>> = const { std::cell::RefCell::new(None) };
}

fn with_zstd<T>(f: impl FnOnce(&mut Zstd) -> std::io::Result<T>) -> std::io::Result<T> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some((
                zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
                zstd::bulk::Decompressor::new()?,
            ));
        }
        match slot.as_mut() {
            Some(z) => f(z),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

fn page_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn event_number(key: &[u8]) -> Result<u64, Corrupt> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| Corrupt(format!("an event key of {} bytes, not 8", key.len())))
}

// ---------------------------------------------------------------------------------------------
// The working set of one transaction (or of one reader)

/// The stored values a transaction (or a reader) has read, decoded, with its changes; written
/// back by [`Overlay::changed`].
#[derive(Default)]
pub(crate) struct Overlay {
    buckets: HashMap<u64, (Bucket, bool)>,
    pages: HashMap<u64, (Page, bool)>,
    events: HashMap<u64, (Page, bool)>,
    /// The next free slot, once read (and whether it moved).
    next_slot: Option<(u64, bool)>,
    /// The case id looked up last and its slot: recording a case looks its slot up several
    /// times in a row (is there a case, read it, write it).
    last_slot: Option<(Vec<u8>, Option<u64>)>,
    /// Where decoded buckets are taken from and given back to, when there is one: the stored
    /// bytes of each bucket read, and each changed bucket as written.
    cache: Option<BucketCache>,
    read_bytes: HashMap<u64, Vec<u8>>,
    settled: Vec<(u64, Vec<u8>, Bucket)>,
}

/// Index buckets decoded by the earlier transactions (and readers) of one batch, each with the
/// stored bytes it was decoded from or encoded to. A later transaction that reads the same
/// bytes takes the decoded bucket instead of decompressing and decoding it again (the same
/// bytes are the same entries, whoever wrote in between).
#[derive(Clone)]
pub(crate) struct BucketCache {
    shared: std::sync::Arc<std::sync::Mutex<CachedBuckets>>,
    /// Whether the buckets written are given back (not by the batch's last transaction).
    keep: bool,
}

impl Default for BucketCache {
    fn default() -> Self {
        BucketCache {
            shared: Default::default(),
            keep: true,
        }
    }
}

/// Bucket number → the stored bytes and the bucket decoded from (or encoded to) them.
type CachedBuckets = HashMap<u64, (Vec<u8>, Bucket)>;

impl BucketCache {
    /// The cache as the batch's last transaction uses it: it takes the buckets decoded before
    /// it and gives back none (no one would take them: decoding what it wrote is not done).
    pub(crate) fn last(&self) -> BucketCache {
        BucketCache {
            shared: self.shared.clone(),
            keep: false,
        }
    }

    /// The decoded bucket `b` if it was decoded from (or encoded to) `stored`; taken out.
    fn take(&self, b: u64, stored: &[u8]) -> Option<Bucket> {
        let mut map = self.shared.lock().ok()?;
        match map.get(&b) {
            Some((bytes, _)) if bytes.as_slice() == stored => map.remove(&b).map(|(_, bk)| bk),
            _ => None,
        }
    }

    fn put(&self, entries: Vec<(u64, Vec<u8>, Bucket)>) {
        if let Ok(mut map) = self.shared.lock() {
            for (b, bytes, bucket) in entries {
                map.insert(b, (bytes, bucket));
            }
        }
    }
}

impl Overlay {
    fn bucket<L: Load>(
        &mut self,
        l: &L,
        b: u64,
    ) -> Result<&mut (Bucket, bool), PagedError<L::Err>> {
        use std::collections::hash_map::Entry;
        match self.buckets.entry(b) {
            Entry::Occupied(read) => Ok(read.into_mut()),
            Entry::Vacant(slot) => {
                let bucket = match l
                    .load(Phys::Index, &page_key(b))
                    .map_err(PagedError::Load)?
                {
                    Some(bytes) => match &self.cache {
                        None => Bucket::decode(&bytes)?,
                        Some(cache) => {
                            let bucket = match cache.take(b, &bytes) {
                                Some(bucket) => bucket,
                                None => Bucket::decode(&bytes)?,
                            };
                            self.read_bytes.insert(b, bytes);
                            bucket
                        }
                    },
                    None => Bucket::default(),
                };
                Ok(slot.insert((bucket, false)))
            }
        }
    }

    fn page<L: Load>(
        &mut self,
        l: &L,
        tree: Phys,
        n: u64,
    ) -> Result<&mut (Page, bool), PagedError<L::Err>> {
        let pages = if tree == Phys::Events {
            &mut self.events
        } else {
            &mut self.pages
        };
        use std::collections::hash_map::Entry;
        match pages.entry(n) {
            Entry::Occupied(read) => Ok(read.into_mut()),
            Entry::Vacant(slot) => {
                let page = match l.load(tree, &page_key(n)).map_err(PagedError::Load)? {
                    Some(bytes) => Page::decode(&bytes)?,
                    None => Page::default(),
                };
                Ok(slot.insert((page, false)))
            }
        }
    }

    /// The slot of a case (None: no such case).
    pub(crate) fn slot<L: Load>(
        &mut self,
        l: &L,
        id: &[u8],
    ) -> Result<Option<u64>, PagedError<L::Err>> {
        if let Some((last, slot)) = &self.last_slot
            && last == id
        {
            return Ok(*slot);
        }
        let key = tagged(IndexTag::Slot, id);
        let (bucket, _) = self.bucket(l, IndexTag::Slot.bucket(id))?;
        let slot = slot_of(id, bucket.get(&key))?;
        self.remember_slot(id, slot);
        Ok(slot)
    }

    fn remember_slot(&mut self, id: &[u8], slot: Option<u64>) {
        match &mut self.last_slot {
            Some((last, s)) => {
                last.clear();
                last.extend_from_slice(id);
                *s = slot;
            }
            None => self.last_slot = Some((id.to_vec(), slot)),
        }
    }

    fn new_slot<L: Load>(&mut self, l: &L) -> Result<u64, PagedError<L::Err>> {
        let next = match self.next_slot {
            Some((n, _)) => n,
            None => match l.load(Phys::Index, NEXT_SLOT).map_err(PagedError::Load)? {
                None => 1,
                Some(v) => <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| PagedError::Corrupt("the next case slot".into()))?,
            },
        };
        self.next_slot = Some((next + 1, true));
        Ok(next)
    }

    /// Whether the logical tree holds `key` (for cases, without reading the case's page).
    pub(crate) fn contains<L: Load>(
        &mut self,
        l: &L,
        tree: Logical,
        key: &[u8],
    ) -> Result<bool, PagedError<L::Err>> {
        match tree {
            Logical::Cases => Ok(self.slot(l, key)?.is_some()),
            _ => Ok(self.get(l, tree, key)?.is_some()),
        }
    }

    /// One value of a logical tree.
    pub(crate) fn get<L: Load>(
        &mut self,
        l: &L,
        tree: Logical,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, PagedError<L::Err>> {
        match tree {
            Logical::Index(tag) => {
                let (bucket, _) = self.bucket(l, tag.bucket(key))?;
                Ok(bucket.get(&tagged(tag, key)).map(<[u8]>::to_vec))
            }
            Logical::Events => {
                let n = event_number(key)?;
                let (page, _) = self.page(l, Phys::Events, n / EVENTS_PER_PAGE)?;
                match page.entries.get(&n) {
                    None => Ok(None),
                    Some((_, b)) => Ok(Some(b.bytes()?.into_owned())),
                }
            }
            Logical::Cases => {
                let Some(slot) = self.slot(l, key)? else {
                    return Ok(None);
                };
                let (page, _) = self.page(l, Phys::Pages, slot / CASES_PER_PAGE)?;
                match page.entries.get(&slot) {
                    Some((id, body)) if id == key => Ok(Some(body.bytes()?.into_owned())),
                    // Read outside a transaction while the one that writes the case is being
                    // applied: not there yet.
                    None => Ok(None),
                    // Slots are never given twice: another case there is damage.
                    Some((id, _)) => Err(PagedError::Corrupt(format!(
                        "case {} is indexed at slot {slot}, which holds case {}",
                        lossy(key),
                        lossy(id)
                    ))),
                }
            }
        }
    }

    /// Writes one value of a logical tree.
    pub(crate) fn insert<L: Load>(
        &mut self,
        l: &L,
        tree: Logical,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), PagedError<L::Err>> {
        self.insert_body(l, tree, key, Body::Stored(value))
    }

    /// [`Overlay::insert`] of a value encoded when its page is written (index entries are
    /// encoded at once).
    pub(crate) fn insert_body<L: Load>(
        &mut self,
        l: &L,
        tree: Logical,
        key: &[u8],
        value: Body,
    ) -> Result<(), PagedError<L::Err>> {
        match tree {
            Logical::Index(tag) => {
                let value = value.bytes()?.into_owned();
                let entry = self.bucket(l, tag.bucket(key))?;
                entry.0.insert(tagged(tag, key), value);
                entry.1 = true;
            }
            Logical::Events => {
                let n = event_number(key)?;
                let entry = self.page(l, Phys::Events, n / EVENTS_PER_PAGE)?;
                entry.0.entries.insert(n, (Vec::new(), value));
                entry.1 = true;
            }
            Logical::Cases => {
                let slot = match self.slot(l, key)? {
                    Some(s) => s,
                    None => {
                        let s = self.new_slot(l)?;
                        let entry = self.bucket(l, IndexTag::Slot.bucket(key))?;
                        entry
                            .0
                            .insert(tagged(IndexTag::Slot, key), s.to_be_bytes().to_vec());
                        entry.1 = true;
                        self.remember_slot(key, Some(s));
                        s
                    }
                };
                let entry = self.page(l, Phys::Pages, slot / CASES_PER_PAGE)?;
                entry.0.entries.insert(slot, (key.to_vec(), value));
                entry.1 = true;
            }
        }
        Ok(())
    }

    /// Reads the index buckets numbered `buckets` that are not read yet (one after another).
    fn read_buckets<L: Load>(&mut self, l: &L, buckets: &[u64]) -> Result<(), PagedError<L::Err>> {
        for b in buckets {
            if !self.buckets.contains_key(b) {
                self.bucket(l, *b)?;
            }
        }
        Ok(())
    }

    /// [`Overlay::get`] of many keys of the index tree `tag`: their buckets read first, then
    /// the keys looked up on every core.
    pub(crate) fn get_many<L: Load, K: AsRef<[u8]> + Sync>(
        &mut self,
        l: &L,
        tag: IndexTag,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, PagedError<L::Err>> {
        use rayon::prelude::*;
        let of: Vec<u64> = keys.par_iter().map(|k| tag.bucket(k.as_ref())).collect();
        self.read_buckets(l, &of)?;
        let buckets = &self.buckets;
        Ok(keys
            .par_iter()
            .zip(&of)
            .map(|(k, b)| {
                let (bucket, _) = buckets.get(b)?;
                bucket.get(&tagged(tag, k.as_ref())).map(<[u8]>::to_vec)
            })
            .collect())
    }

    /// [`Overlay::slot`] of many cases, looked up on every core.
    pub(crate) fn slots<L: Load, K: AsRef<[u8]> + Sync>(
        &mut self,
        l: &L,
        ids: &[K],
    ) -> Result<Vec<Option<u64>>, PagedError<L::Err>> {
        self.get_many(l, IndexTag::Slot, ids)?
            .into_iter()
            .zip(ids)
            .map(|(v, id)| slot_of(id.as_ref(), v.as_deref()))
            .collect()
    }

    /// [`Overlay::scan_bucket`] of many prefixes, scanned on every core once their buckets are
    /// read (None for a prefix that does not choose a bucket).
    pub(crate) fn scan_many<L: Load, K: AsRef<[u8]> + Sync>(
        &mut self,
        l: &L,
        tag: IndexTag,
        prefixes: &[K],
    ) -> Result<Vec<Option<Vec<Entry>>>, PagedError<L::Err>> {
        use rayon::prelude::*;
        let of: Vec<Option<u64>> = prefixes
            .par_iter()
            .map(|p| tag.bucket_of_prefix(p.as_ref()))
            .collect();
        let read: Vec<u64> = of.iter().flatten().copied().collect();
        self.read_buckets(l, &read)?;
        let buckets = &self.buckets;
        Ok(prefixes
            .par_iter()
            .zip(&of)
            .map(|(p, b)| {
                let (bucket, _) = buckets.get(&(*b)?)?;
                Some(scan_in(bucket, tag, p.as_ref()))
            })
            .collect())
    }

    /// [`Overlay::insert`] of many values at once, made ready by [`Ready::of`] (on any
    /// thread). The index entries (a new case's slot among them) are put into their buckets on
    /// every core, each bucket by one thread; the pages' entries one after another.
    pub(crate) fn insert_ready<L: Load>(
        &mut self,
        l: &L,
        writes: impl IntoIterator<Item = Ready>,
    ) -> Result<(), PagedError<L::Err>> {
        use rayon::prelude::*;
        // Each bucket's new entries, in the order written (a later one replaces an earlier).
        let mut to: Vec<NewEntries> = (0..BUCKETS).map(|_| Vec::new()).collect();
        let mut entries = 0usize;
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut events: Vec<(u64, Vec<u8>, Body)> = Vec::new();
        for w in writes {
            match w {
                Ready::Index { bucket, key, value } => {
                    match to.get_mut(bucket as usize) {
                        Some(new) => new.push((key, value)),
                        // Not a bucket number: not made by `Ready::of`.
                        None => {
                            return Err(PagedError::Corrupt(format!(
                                "an index entry for bucket {bucket} (of {BUCKETS})"
                            )));
                        }
                    }
                    entries += 1;
                }
                Ready::Event { key, value } => {
                    events.push((event_number(&key)?, Vec::new(), Body::Stored(value)))
                }
                Ready::Case { id, value } => cases.push((id, value)),
            }
        }
        // The cases' slots, looked up on every core; the new ones handed out in order (a case
        // written twice keeps the slot it was given first).
        let found = if cases.len() < PARALLEL_BATCH {
            let mut found = Vec::with_capacity(cases.len());
            for (id, _) in &cases {
                found.push(self.slot(l, id)?);
            }
            found
        } else {
            let ids: Vec<&[u8]> = cases.iter().map(|(id, _)| id.as_slice()).collect();
            self.slots(l, &ids)?
        };
        self.last_slot = None;
        let mut given: HashMap<&[u8], u64, bucket::KeyHasher> = HashMap::default();
        let mut slots = Vec::with_capacity(cases.len());
        for ((id, _), found) in cases.iter().zip(found) {
            let slot = match found {
                Some(s) => s,
                None => match given.get(id.as_slice()) {
                    Some(s) => *s,
                    None => {
                        let s = self.new_slot(l)?;
                        given.insert(id, s);
                        to[IndexTag::Slot.bucket(id) as usize]
                            .push((tagged(IndexTag::Slot, id), s.to_be_bytes().to_vec()));
                        entries += 1;
                        s
                    }
                },
            };
            slots.push(slot);
        }
        drop(given);
        let placed = cases
            .into_iter()
            .zip(slots)
            .map(|((id, value), slot)| (slot, id, Body::Stored(value)))
            .collect();
        self.fill_pages(l, Phys::Pages, CASES_PER_PAGE, placed)?;
        self.fill_pages(l, Phys::Events, EVENTS_PER_PAGE, events)?;
        let to = to
            .into_iter()
            .enumerate()
            .filter(|(_, new)| !new.is_empty())
            .map(|(b, new)| (b as u64, new));
        if entries < PARALLEL_BATCH {
            for (b, new) in to {
                let entry = self.bucket(l, b)?;
                for (key, value) in new {
                    entry.0.insert(key, value);
                }
                entry.1 = true;
            }
            return Ok(());
        }
        // Each bucket taken out with its entries, filled on every core, and put back.
        let mut work: Vec<(u64, Bucket, NewEntries)> = Vec::new();
        for (b, new) in to {
            self.bucket(l, b)?;
            let bucket = self
                .buckets
                .remove(&b)
                .map(|(bk, _)| bk)
                .unwrap_or_default();
            work.push((b, bucket, new));
        }
        work.par_iter_mut().for_each(|(_, bucket, new)| {
            bucket.reserve(new.len());
            for (key, value) in new.drain(..) {
                bucket.insert(key, value);
            }
        });
        for (b, bucket, _) in work {
            self.buckets.insert(b, (bucket, true));
        }
        Ok(())
    }

    /// Puts `entries` (number, id, body) into the pages of `tree` (`per_page` numbers a page):
    /// each page read first, then filled on every core. A later entry of a number replaces an
    /// earlier one.
    fn fill_pages<L: Load>(
        &mut self,
        l: &L,
        tree: Phys,
        per_page: u64,
        mut entries: Vec<(u64, Vec<u8>, Body)>,
    ) -> Result<(), PagedError<L::Err>> {
        use rayon::prelude::*;
        if entries.is_empty() {
            return Ok(());
        }
        // Stable: the entries of one number stay in the order written.
        entries.sort_by_key(|(n, _, _)| *n);
        type Fill = (u64, Page, Vec<(u64, Vec<u8>, Body)>);
        let mut work: Vec<Fill> = Vec::new();
        for (n, id, body) in entries {
            let p = n / per_page;
            match work.last_mut() {
                Some((last, _, new)) if *last == p => new.push((n, id, body)),
                _ => {
                    self.page(l, tree, p)?;
                    let page = self.pages_of(tree).remove(&p).map(|(pg, _)| pg);
                    work.push((p, page.unwrap_or_default(), vec![(n, id, body)]));
                }
            }
        }
        work.par_iter_mut().for_each(|(_, page, new)| {
            for (n, id, body) in new.drain(..) {
                page.entries.insert(n, (id, body));
            }
        });
        let pages = self.pages_of(tree);
        for (p, page, _) in work {
            pages.insert(p, (page, true));
        }
        Ok(())
    }

    /// The pages read of `tree` (the cases' or the events').
    fn pages_of(&mut self, tree: Phys) -> &mut HashMap<u64, (Page, bool)> {
        if tree == Phys::Events {
            &mut self.events
        } else {
            &mut self.pages
        }
    }

    /// Removes one value of a logical tree (absent is fine).
    pub(crate) fn remove<L: Load>(
        &mut self,
        l: &L,
        tree: Logical,
        key: &[u8],
    ) -> Result<(), PagedError<L::Err>> {
        match tree {
            Logical::Index(tag) => {
                let entry = self.bucket(l, tag.bucket(key))?;
                if entry.0.remove(&tagged(tag, key)) {
                    entry.1 = true;
                }
            }
            Logical::Events => {
                let n = event_number(key)?;
                let entry = self.page(l, Phys::Events, n / EVENTS_PER_PAGE)?;
                if entry.0.entries.remove(&n).is_some() {
                    entry.1 = true;
                }
            }
            Logical::Cases => {
                let Some(slot) = self.slot(l, key)? else {
                    return Ok(());
                };
                let entry = self.bucket(l, IndexTag::Slot.bucket(key))?;
                entry.0.remove(&tagged(IndexTag::Slot, key));
                entry.1 = true;
                self.remember_slot(key, None);
                let entry = self.page(l, Phys::Pages, slot / CASES_PER_PAGE)?;
                entry.0.entries.remove(&slot);
                entry.1 = true;
            }
        }
        Ok(())
    }

    /// The entries of an index tree whose key starts with `prefix`, in key order, when they are
    /// all in one bucket (None: the prefix does not choose a bucket).
    pub(crate) fn scan_bucket<L: Load>(
        &mut self,
        l: &L,
        tag: IndexTag,
        prefix: &[u8],
    ) -> Result<Option<Vec<Entry>>, PagedError<L::Err>> {
        let Some(b) = tag.bucket_of_prefix(prefix) else {
            return Ok(None);
        };
        let (bucket, _) = self.bucket(l, b)?;
        Ok(Some(scan_in(bucket, tag, prefix)))
    }

    /// An overlay that takes the buckets it reads from `cache` when it can, and gives them back
    /// by [`Overlay::give_back`].
    pub(crate) fn cached(cache: Option<BucketCache>) -> Overlay {
        Overlay {
            cache,
            ..Overlay::default()
        }
    }

    /// Once what this overlay changed is written: its buckets, as stored now, to its cache.
    pub(crate) fn give_back(&mut self) {
        let Some(cache) = self.cache.clone().filter(|c| c.keep) else {
            return;
        };
        let mut out = std::mem::take(&mut self.settled);
        let mut changed = HashMap::new();
        for (b, (bucket, dirty)) in self.buckets.drain() {
            if dirty {
                // Given back as written (in `settled`); this one is dropped with the overlay.
                changed.insert(b, (bucket, dirty));
                continue;
            }
            if let Some(bytes) = self.read_bytes.remove(&b) {
                out.push((b, bytes, bucket));
            }
        }
        self.buckets = changed;
        self.read_bytes.clear();
        cache.put(out);
    }

    /// Drops the overlay; a large one (a batch's) on another thread, so that freeing its
    /// entries one by one does not hold up the caller.
    pub(crate) fn drop_aside(self) {
        if self.buckets.len() + self.pages.len() + self.events.len() > DROP_ASIDE_FROM {
            rayon::spawn(move || drop(self));
        }
    }

    /// The stored values this overlay changed, encoded (in parallel): what to write back.
    pub(crate) fn changed(&mut self) -> Result<Vec<Change>, Corrupt> {
        use rayon::prelude::*;
        let mut jobs: Vec<(Phys, u64, Job<'_>)> = Vec::new();
        for (b, (bucket, dirty)) in &self.buckets {
            if *dirty {
                jobs.push((Phys::Index, *b, Job::Bucket(bucket)));
            }
        }
        for (n, (page, dirty)) in &self.pages {
            if *dirty {
                jobs.push((Phys::Pages, *n, Job::Page(page)));
            }
        }
        for (n, (page, dirty)) in &self.events {
            if *dirty {
                jobs.push((Phys::Events, *n, Job::Page(page)));
            }
        }
        // Larger pages first, so that the threads finish together.
        jobs.sort_by_key(|(t, n, _)| (*t != Phys::Pages, *n));
        let settle = self.cache.as_ref().is_some_and(|c| c.keep);
        let done: Vec<(Change, Option<Bucket>)> = jobs
            .par_iter()
            .map(|(tree, n, job)| {
                let (value, settled) = match job {
                    Job::Bucket(b) if b.entries().is_empty() => (None, None),
                    Job::Page(p) if p.entries.is_empty() => (None, None),
                    Job::Bucket(b) => {
                        let (bytes, settled) = b.encode_settled(settle)?;
                        (Some(bytes), settled)
                    }
                    Job::Page(p) => (Some(p.encode()?), None),
                };
                Ok(((*tree, page_key(*n).to_vec(), value), settled))
            })
            .collect::<Result<_, Corrupt>>()?;
        drop(jobs);
        let mut out = Vec::with_capacity(done.len() + 1);
        for ((tree, key, value), settled) in done {
            if let (Some(bucket), Some(bytes), Some(b)) = (settled, &value, bucket_number(&key)) {
                self.settled.push((b, bytes.clone(), bucket));
            }
            out.push((tree, key, value));
        }
        if let Some((next, true)) = self.next_slot {
            out.push((
                Phys::Index,
                NEXT_SLOT.to_vec(),
                Some(next.to_be_bytes().to_vec()),
            ));
        }
        Ok(out)
    }

    /// Forgets what was read so far (it was written back): a long migration keeps its memory
    /// bounded.
    pub(crate) fn settle(&mut self) {
        self.pages.clear();
        self.events.clear();
        self.buckets.clear();
        self.last_slot = None;
        if let Some((_, moved)) = self.next_slot.as_mut() {
            *moved = false;
        }
    }
}

/// A value to write to a logical tree, made ready for [`Overlay::insert_ready`]: an index
/// entry with its bucket chosen and its key tagged, a case or an event.
pub(crate) enum Ready {
    Index {
        bucket: u64,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Case {
        id: Vec<u8>,
        value: Vec<u8>,
    },
    Event {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

impl Ready {
    /// A write of `value` under `key` in the logical tree `tree`.
    pub(crate) fn of(tree: Logical, key: Vec<u8>, value: Vec<u8>) -> Ready {
        match tree {
            Logical::Index(tag) => Ready::Index {
                bucket: tag.bucket(&key),
                key: tagged(tag, &key),
                value,
            },
            Logical::Cases => Ready::Case { id: key, value },
            Logical::Events => Ready::Event { key, value },
        }
    }
}

/// New entries of one index bucket (key, value), in the order written.
type NewEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// A key and value of a logical tree.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// A stored value to write (`Some`) or remove (`None`): tree, key, value.
pub(crate) type Change = (Phys, Vec<u8>, Option<Vec<u8>>);

enum Job<'a> {
    Bucket(&'a Bucket),
    Page(&'a Page),
}

fn tagged(tag: IndexTag, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(tag as u8);
    k.extend_from_slice(key);
    k
}

/// The slot a case's index entry holds (big-endian u64).
fn slot_of<E>(id: &[u8], entry: Option<&[u8]>) -> Result<Option<u64>, PagedError<E>> {
    entry
        .map(|v| {
            <[u8; 8]>::try_from(v)
                .map(u64::from_be_bytes)
                .map_err(|_| PagedError::Corrupt(format!("the slot of case {}", lossy(id))))
        })
        .transpose()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The entries of `bucket` in the tree `tag` whose key starts with `prefix`, tag removed.
pub(crate) fn scan_in(bucket: &Bucket, tag: IndexTag, prefix: &[u8]) -> Vec<Entry> {
    bucket
        .with_prefix(&tagged(tag, prefix))
        .into_iter()
        .map(|(k, v)| (k[1..].to_vec(), v.to_vec()))
        .collect()
}

/// Whether a key of the index tree is a bucket (not the next-slot counter).
pub(crate) fn bucket_number(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests;
