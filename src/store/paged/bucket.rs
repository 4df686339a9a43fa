//! One index bucket of the packed layout: its entries as stored, read in place, and the
//! changes made since it was read.

use std::collections::HashMap;

use super::{BUCKET_FORMAT, Corrupt, Cursor, MAX_PAGE_BYTES, put_u32, with_zstd};

/// Entries of one index bucket, by key (tag first): the entries as stored, read in place
/// (decoding a bucket allocates nothing per entry), and the changes made since.
///
/// A lookup goes through a hash table of the stored keys, built when the bucket is decoded: a
/// binary search of a bucket freshly read from the store missed the cache at nearly every step
/// (a quarter of the time of recording new cases).
#[derive(Default, Debug, Clone)]
pub(crate) struct Bucket {
    raw: Vec<u8>,
    /// Key offset, key length, value offset, value length of each stored entry, in key order.
    base: Vec<[u32; 4]>,
    /// Open addressing over `base`: 0 is an empty place, `i + 1` the stored entry `i`; its
    /// length is a power of two, at least twice the entries.
    table: Vec<u32>,
    /// Entries written (`Some`) or removed (`None`) since the bucket was read.
    delta: HashMap<Vec<u8>, Option<Vec<u8>>, KeyHasher>,
}

/// The hash of a key of the index (its bytes, eight at a time).
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    h ^ (h >> 29)
}

/// [`key_hash`] as a [`std::hash::BuildHasher`] for the changes' map.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct KeyHasher;

/// The state of [`KeyHasher`]: the bytes hashed so far folded into one word.
pub(crate) struct KeyHash(u64);

impl std::hash::BuildHasher for KeyHasher {
    type Hasher = KeyHash;
    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ key_hash(bytes);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
}

impl PartialEq for Bucket {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl Bucket {
    /// A bucket as stored: its format byte, the length of its entries (u32 LE), then the
    /// entries compressed with zstd (keys share long prefixes: about a third of the bytes).
    pub(crate) fn decode(stored: &[u8]) -> Result<Bucket, Corrupt> {
        let mut c = Cursor::new(stored, "an index bucket");
        let format = c.take(1)?[0];
        if format != BUCKET_FORMAT {
            return Err(Corrupt(format!(
                "an index bucket of unknown format {format}"
            )));
        }
        let len = c.u32()? as usize;
        if len > MAX_PAGE_BYTES {
            return Err(Corrupt(format!(
                "an index bucket claims {len} bytes (at most {MAX_PAGE_BYTES})"
            )));
        }
        let raw = with_zstd(|z| z.1.decompress(c.rest(), len))
            .map_err(|e| Corrupt(format!("an index bucket cannot be decompressed: {e}")))?;
        if raw.len() != len {
            return Err(Corrupt(format!(
                "an index bucket holds {} bytes, its header says {len}",
                raw.len()
            )));
        }
        Bucket::from_raw(raw)
    }

    /// A bucket from its entries, uncompressed.
    pub(super) fn from_raw(raw: Vec<u8>) -> Result<Bucket, Corrupt> {
        let mut c = Cursor::new(&raw, "an index bucket");
        let n = c.u32()? as usize;
        let mut base: Vec<[u32; 4]> = Vec::with_capacity(n.min(raw.len() / 8));
        for _ in 0..n {
            let kl = c.u32()? as usize;
            let ko = c.at;
            c.take(kl)?;
            let vl = c.u32()? as usize;
            let vo = c.at;
            c.take(vl)?;
            base.push([ko as u32, kl as u32, vo as u32, vl as u32]);
        }
        let mut bucket = Bucket {
            raw,
            base,
            table: Vec::new(),
            delta: HashMap::default(),
        };
        // Scans and writes merge the stored keys in order: they must be in order.
        if bucket
            .base
            .windows(2)
            .any(|w| bucket.key(&w[0]) >= bucket.key(&w[1]))
        {
            return Err(Corrupt("an index bucket's keys are out of order".into()));
        }
        bucket.build_table();
        Ok(bucket)
    }

    fn build_table(&mut self) {
        if self.base.is_empty() {
            return;
        }
        let size = (self.base.len() * 2).next_power_of_two();
        let mask = size - 1;
        let mut table = vec![0u32; size];
        for (i, e) in self.base.iter().enumerate() {
            let mut at = key_hash(self.key(e)) as usize & mask;
            while table[at] != 0 {
                at = (at + 1) & mask;
            }
            table[at] = i as u32 + 1;
        }
        self.table = table;
    }

    /// The stored entry of `key`, through the hash table.
    fn find(&self, key: &[u8]) -> Option<&[u32; 4]> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut at = key_hash(key) as usize & mask;
        loop {
            let i = self.table[at];
            if i == 0 {
                return None;
            }
            let e = &self.base[i as usize - 1];
            if self.key(e) == key {
                return Some(e);
            }
            at = (at + 1) & mask;
        }
    }

    fn key(&self, e: &[u32; 4]) -> &[u8] {
        &self.raw[e[0] as usize..(e[0] + e[1]) as usize]
    }

    fn value(&self, e: &[u32; 4]) -> &[u8] {
        &self.raw[e[2] as usize..(e[2] + e[3]) as usize]
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        if let Some(v) = self.delta.get(key) {
            return v.as_deref();
        }
        self.find(key).map(|e| self.value(e))
    }

    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.delta.insert(key, Some(value));
    }

    /// Room for `n` more changes.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.delta.reserve(n);
    }

    /// Removes an entry; whether there was one.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        let present = self.get(key).is_some();
        if present {
            self.delta.insert(key.to_vec(), None);
        }
        present
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub(crate) fn with_prefix(&self, prefix: &[u8]) -> Vec<(&[u8], &[u8])> {
        let from = self.base.partition_point(|e| self.key(e) < prefix);
        let stored = self.base[from..]
            .iter()
            .map(|e| (self.key(e), Some(self.value(e))))
            .take_while(|(k, _)| prefix.is_empty() || k.starts_with(prefix));
        let mut changed: Vec<(&[u8], Option<&[u8]>)> = self
            .delta
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        changed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        merge(stored, changed.into_iter())
    }

    /// Every entry, in key order.
    pub(crate) fn entries(&self) -> Vec<(&[u8], &[u8])> {
        self.with_prefix(b"")
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Corrupt> {
        self.encode_settled(false).map(|(out, _)| out)
    }

    /// [`Bucket::encode`], and when `settle` asks for it the bucket as it will be read back
    /// (its changes merged into its stored entries).
    pub(crate) fn encode_settled(
        &self,
        settle: bool,
    ) -> Result<(Vec<u8>, Option<Bucket>), Corrupt> {
        let raw = self.encode_raw();
        let packed = with_zstd(|z| z.0.compress(&raw))
            .map_err(|e| Corrupt(format!("an index bucket cannot be compressed: {e}")))?;
        let mut out = Vec::with_capacity(packed.len() + 5);
        out.push(BUCKET_FORMAT);
        put_u32(&mut out, raw.len());
        out.extend_from_slice(&packed);
        let settled = if settle {
            Some(Bucket::from_raw(raw)?)
        } else {
            None
        };
        Ok((out, settled))
    }

    fn encode_raw(&self) -> Vec<u8> {
        let entries = self.entries();
        let size: usize = entries.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let mut out = Vec::with_capacity(size + 4);
        put_u32(&mut out, entries.len());
        for (k, v) in entries {
            put_u32(&mut out, k.len());
            out.extend_from_slice(k);
            put_u32(&mut out, v.len());
            out.extend_from_slice(v);
        }
        out
    }
}

/// Two sorted streams of entries, the second's entries (or removals, `None`) taking the place
/// of the first's.
fn merge<'a>(
    stored: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    changed: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<(&'a [u8], &'a [u8])> {
    let mut out = Vec::new();
    let mut a = stored.peekable();
    let mut b = changed.peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (Some(x), Some(y)) => match x.0.cmp(y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next()
                }
            },
        };
        if let Some((k, Some(v))) = next {
            out.push((k, v));
        }
    }
    out
}
