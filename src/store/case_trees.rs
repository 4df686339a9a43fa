//! The case trees: pages of cases and their index buckets read and written through sled,
//! outside a transaction (`CaseReader`) and inside one (`CaseTxn`), and the transaction's errors.

use super::*;

/// Reads the packed trees from the database itself.
pub(super) struct DbLoad<'a>(pub(super) &'a Store);

impl Load for DbLoad<'_> {
    type Err = StoreError;
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.0.sled().open_tree(tree.name())?;
        Ok(t.get(key)?.map(|v| v.to_vec()))
    }
}

pub(super) fn paged_store<T>(r: Result<T, PagedError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        PagedError::Load(e) => e,
        PagedError::Corrupt(m) => StoreError::Engine(m),
    })
}

/// Stored values decoded once and read many times outside a transaction
/// ([`Store::case_reader`]).
pub(crate) struct CaseReader<'s> {
    pub(super) store: &'s Store,
    pub(super) seen: std::cell::RefCell<Overlay>,
}

impl Drop for CaseReader<'_> {
    fn drop(&mut self) {
        self.seen.get_mut().give_back();
    }
}

impl CaseReader<'_> {
    /// One value of a case tree.
    pub(crate) fn get(&self, tree: CaseTree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match tree.layout() {
            Layout::Raw => {
                let t = self.store.sled().open_tree(tree.name())?;
                Ok(t.get(key)?.map(|v| v.to_vec()))
            }
            Layout::Paged(l) => {
                paged_store(self.seen.borrow_mut().get(&DbLoad(self.store), l, key))
            }
        }
    }

    /// The slot of the case of each of `ids` (`None`: no case), looked up on every core.
    pub(crate) fn case_slots<I: AsRef<[u8]> + Sync>(
        &self,
        ids: &[I],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        paged_store(self.seen.borrow_mut().slots(&DbLoad(self.store), ids))
    }

    /// [`CaseReader::scan`] of many prefixes (scanned on every core when each chooses one
    /// index bucket).
    pub(crate) fn scan_many<K: AsRef<[u8]> + Sync>(
        &mut self,
        tree: CaseTree,
        prefixes: &[K],
    ) -> Result<Vec<Vec<Entry>>, StoreError> {
        let found = match tree.layout() {
            Layout::Paged(Logical::Index(tag)) => paged_store(self.seen.get_mut().scan_many(
                &DbLoad(self.store),
                tag,
                prefixes,
            ))?,
            _ => vec![None; prefixes.len()],
        };
        found
            .into_iter()
            .zip(prefixes)
            .map(|(f, p)| match f {
                Some(entries) => Ok(entries),
                None => self.scan(tree, p.as_ref()),
            })
            .collect()
    }

    /// `f` of the stored case of each of `ids` (its place in `ids` and its stored bytes), at
    /// the slots [`CaseReader::case_slots`] gave: the pages read and decoded on every core,
    /// each once. `None` for an id without a case.
    pub(crate) fn par_map_cases<I, T, F>(
        &self,
        ids: &[I],
        slots: &[Option<u64>],
        f: F,
    ) -> Result<Vec<Option<T>>, StoreError>
    where
        I: AsRef<[u8]> + Sync,
        T: Send,
        F: Fn(usize, &[u8]) -> T + Sync,
    {
        use rayon::prelude::*;
        if slots.len() != ids.len() {
            return Err(StoreError::Engine(format!(
                "{} slots for {} cases",
                slots.len(),
                ids.len()
            )));
        }
        let load = DbLoad(self.store);
        let mut slots: Vec<(u64, usize)> = slots
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.map(|s| (s, k)))
            .collect();
        slots.par_sort_unstable();
        let pages: Vec<&[(u64, usize)]> = slots
            .chunk_by(|a, b| a.0 / paged::CASES_PER_PAGE == b.0 / paged::CASES_PER_PAGE)
            .collect();
        // Each group's cases go to their places at once: what is found is held once.
        let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(ids.len()).collect();
        // The pages are read from sled here, a group at a time, and decoded on every core: no
        // job on rayon's threads touches sled (see `Store::case_transaction_in`).
        for groups in pages.chunks(PAGES_READ_AT_ONCE) {
            let stored: Vec<Option<Vec<u8>>> = groups
                .iter()
                .map(|group| {
                    let page_no = group[0].0 / paged::CASES_PER_PAGE;
                    load.load(Phys::Pages, &page_no.to_be_bytes())
                })
                .collect::<Result<_, StoreError>>()?;
            let decoded = groups
                .par_iter()
                .zip(stored)
                .map(|(group, stored)| {
                    let page = match stored {
                        Some(bytes) => {
                            paged::Page::decode(&bytes).map_err(|c| StoreError::Engine(c.0))?
                        }
                        None => paged::Page::default(),
                    };
                    let mut out = Vec::with_capacity(group.len());
                    for (slot, k) in group.iter() {
                        match page.entries.get(slot) {
                            Some((id, body)) if id.as_slice() == ids[*k].as_ref() => {
                                let bytes = body.bytes().map_err(|c| StoreError::Engine(c.0))?;
                                out.push((*k, f(*k, &bytes)));
                            }
                            // Not written yet (a transaction being applied): not there.
                            None => {}
                            Some((id, _)) => {
                                return Err(StoreError::Engine(format!(
                                    "case {} is indexed at slot {slot}, which holds case {}",
                                    String::from_utf8_lossy(ids[*k].as_ref()),
                                    String::from_utf8_lossy(id)
                                )));
                            }
                        }
                    }
                    Ok(out)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for (k, t) in decoded.into_iter().flatten() {
                out[k] = Some(t);
            }
        }
        Ok(out)
    }

    /// The entries of a case tree whose key starts with `prefix`, in key order.
    pub(crate) fn scan(&mut self, tree: CaseTree, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        match tree.layout() {
            Layout::Paged(Logical::Index(tag)) => self.scan_index(tag, prefix),
            _ => self.store.case_scan(tree, prefix)?.collect(),
        }
    }

    /// An index tree's entries under `prefix`: one bucket when the prefix chooses it, every
    /// bucket otherwise.
    pub(super) fn scan_index(
        &mut self,
        tag: IndexTag,
        prefix: &[u8],
    ) -> Result<Vec<Entry>, StoreError> {
        let load = DbLoad(self.store);
        if let Some(found) = paged_store(self.seen.get_mut().scan_bucket(&load, tag, prefix))? {
            return Ok(found);
        }
        // Every bucket: read from sled here, a group at a time, and decoded and scanned on
        // every core (no job on rayon's threads touches sled: see
        // `Store::case_transaction_in`).
        use rayon::prelude::*;
        let t = self.store.sled().open_tree(Phys::Index.name())?;
        let mut out = Vec::new();
        let mut stored: Vec<sled::IVec> = Vec::with_capacity(BUCKETS_READ_AT_ONCE);
        let mut scan = |stored: &mut Vec<sled::IVec>| -> Result<(), StoreError> {
            let found = stored
                .par_iter()
                .map(|v| {
                    paged::Bucket::decode(v)
                        .map(|bucket| paged::scan_in(&bucket, tag, prefix))
                        .map_err(|c| StoreError::Engine(c.0))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(found.into_iter().flatten());
            stored.clear();
            Ok(())
        };
        for kv in t.iter() {
            let (k, v) = kv?;
            if paged::bucket_number(&k).is_none() {
                continue;
            }
            stored.push(v);
            if stored.len() == BUCKETS_READ_AT_ONCE {
                scan(&mut stored)?;
            }
        }
        scan(&mut stored)?;
        out.par_sort_unstable();
        Ok(out)
    }
}

/// How many index buckets a scan of every bucket reads before it decodes them.
const BUCKETS_READ_AT_ONCE: usize = 64;

/// How many case pages [`CaseReader::par_map_cases`] reads before it decodes them.
const PAGES_READ_AT_ONCE: usize = 256;

/// The trees of the case workflow and of its dispatch outbox. Their keys and values are the
/// business of [`crate::cases`] and [`crate::dispatch`]; the store only keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaseTree {
    /// case id → case.
    Cases,
    /// ticket → case id.
    Tickets,
    /// profile, key and start date of a break → case id.
    BreakIndex,
    /// event sequence number (big-endian u64) → event.
    Events,
    /// case id and event sequence number → nothing (the events of one case).
    CaseEvents,
    /// case id → training label of a decided case.
    Feedback,
    /// counter name → last value handed out (big-endian u64).
    Seq,
    /// outbox item id (big-endian u64) → outbox item (schema 3).
    Outbox,
    /// outbox item id (big-endian u64) → nothing, for the items not yet settled (schema 3).
    OutboxPending,
    /// deterministic break key (the Jira label) → Jira issue key (schema 3).
    JiraKeys,
}

impl CaseTree {
    /// Every case tree (the packed ones as schema 3 kept them).
    #[cfg(test)]
    pub(super) const ALL: [CaseTree; 10] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
        CaseTree::Feedback,
        CaseTree::Seq,
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    /// The trees schema 2 added.
    pub(super) const V2: [CaseTree; 7] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
        CaseTree::Feedback,
        CaseTree::Seq,
    ];

    /// The trees schema 3 added.
    pub(super) const V3: [CaseTree; 3] = [
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            CaseTree::Cases => "cases",
            CaseTree::Tickets => "tickets",
            CaseTree::BreakIndex => "break_index",
            CaseTree::Events => "events",
            CaseTree::CaseEvents => "case_events",
            CaseTree::Feedback => "feedback",
            CaseTree::Seq => "seq",
            CaseTree::Outbox => "outbox",
            CaseTree::OutboxPending => "outbox_pending",
            CaseTree::JiraKeys => "jira_keys",
        }
    }

    /// The trees kept one entry per key (the others are packed).
    pub(super) const RAW: [CaseTree; 5] = [
        CaseTree::Feedback,
        CaseTree::Seq,
        CaseTree::Outbox,
        CaseTree::OutboxPending,
        CaseTree::JiraKeys,
    ];

    /// The trees schema 4 packs (and drops once they are copied).
    pub(super) const PACKED: [CaseTree; 5] = [
        CaseTree::Cases,
        CaseTree::Tickets,
        CaseTree::BreakIndex,
        CaseTree::Events,
        CaseTree::CaseEvents,
    ];

    pub(super) fn layout(self) -> Layout {
        match self {
            CaseTree::Cases => Layout::Paged(Logical::Cases),
            CaseTree::Events => Layout::Paged(Logical::Events),
            CaseTree::Tickets => Layout::Paged(Logical::Index(IndexTag::Tickets)),
            CaseTree::BreakIndex => Layout::Paged(Logical::Index(IndexTag::BreakIndex)),
            CaseTree::CaseEvents => Layout::Paged(Logical::Index(IndexTag::CaseEvents)),
            CaseTree::Feedback
            | CaseTree::Seq
            | CaseTree::Outbox
            | CaseTree::OutboxPending
            | CaseTree::JiraKeys => Layout::Raw,
        }
    }

    /// The position of a plain tree among a transaction's trees.
    pub(super) fn raw_index(self) -> Option<usize> {
        CaseTree::RAW.iter().position(|t| *t == self)
    }
}

/// How a case tree is stored.
#[derive(Clone, Copy)]
pub(super) enum Layout {
    /// A sled tree of its own, one entry per key.
    Raw,
    /// Packed ([`paged`]).
    Paged(Logical),
}

/// Reads the packed trees through a transaction's views.
pub(super) struct TxLoad<'a>(pub(super) &'a [TransactionalTree]);

impl Load for TxLoad<'_> {
    type Err = UnabortableTransactionError;
    fn load(&self, tree: Phys, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Err> {
        let at = CaseTree::RAW.len() + Phys::ALL.iter().position(|p| *p == tree).unwrap_or(0);
        Ok(self.0[at].get(key)?.map(|v| v.to_vec()))
    }
}

/// The case trees inside one transaction of [`Store::case_transaction`]. Reads see the
/// transaction's own writes.
pub(crate) struct CaseTxn<'a> {
    pub(super) trees: &'a [TransactionalTree],
    /// The counters (values of the `seq` tree) this transaction advanced: each is read once
    /// and written once, when the transaction's body is done, however often it is advanced.
    pub(super) counters: std::cell::RefCell<Vec<(Vec<u8>, u64)>>,
    /// The packed values this transaction read, decoded, with its changes: written once, when
    /// the body is done.
    pub(super) paged: std::cell::RefCell<Overlay>,
}

impl CaseTxn<'_> {
    pub(super) fn raw(&self, tree: CaseTree) -> &TransactionalTree {
        &self.trees[tree.raw_index().unwrap_or(0)]
    }

    /// One value.
    pub(crate) fn get(&self, tree: CaseTree, key: &[u8]) -> Result<Option<Vec<u8>>, TxStorage> {
        match tree.layout() {
            Layout::Raw => Ok(self.raw(tree).get(key)?.map(|v| v.to_vec())),
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().get(&TxLoad(self.trees), l, key)),
        }
    }

    /// [`CaseTxn::get`] of many keys of an index tree (the tickets, the break index or the
    /// events of each case), looked up on every core; of another tree, one after another.
    pub(crate) fn get_many<K: AsRef<[u8]> + Sync>(
        &self,
        tree: CaseTree,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, TxStorage> {
        let load = TxLoad(self.trees);
        match tree.layout() {
            Layout::Paged(Logical::Index(tag)) => {
                tx_paged(self.paged.borrow_mut().get_many(&load, tag, keys))
            }
            _ => keys.iter().map(|k| self.get(tree, k.as_ref())).collect(),
        }
    }

    /// Whether each of `ids` has a case, looked up on every core.
    pub(crate) fn has_cases<K: AsRef<[u8]> + Sync>(
        &self,
        ids: &[K],
    ) -> Result<Vec<bool>, TxStorage> {
        let slots = tx_paged(self.paged.borrow_mut().slots(&TxLoad(self.trees), ids))?;
        Ok(slots.iter().map(Option::is_some).collect())
    }

    /// Writes one value.
    pub(crate) fn insert(&self, tree: CaseTree, key: &[u8], value: &[u8]) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Raw => {
                self.raw(tree).insert(key, value)?;
                Ok(())
            }
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().insert(
                &TxLoad(self.trees),
                l,
                key,
                value.to_vec(),
            )),
        }
    }

    /// Writes one value of the cases or events, encoded by `encode` when the transaction's
    /// changes are written (in parallel with the others) rather than now.
    pub(crate) fn insert_later(
        &self,
        tree: CaseTree,
        key: &[u8],
        encode: paged::Later,
    ) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Paged(l) => tx_paged(self.paged.borrow_mut().insert_body(
                &TxLoad(self.trees),
                l,
                key,
                paged::Body::Later(encode),
            )),
            Layout::Raw => {
                let value = encode().map_err(TxStorage::Corrupt)?;
                self.insert(tree, key, &value)
            }
        }
    }

    /// Writes or removes many values at once, in order, made ready beforehand by
    /// [`CaseWrite::put`] (on any thread): the packed trees' index entries go into their buckets
    /// on every core ([`Overlay::insert_ready`]).
    pub(crate) fn write_batch(
        &self,
        writes: impl IntoIterator<Item = CaseWrite>,
    ) -> Result<(), TxStorage> {
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            // The packed writes up to the next other one.
            let packed = std::iter::from_fn(|| match writes.peek() {
                Some(CaseWrite::Packed(_)) => match writes.next() {
                    Some(CaseWrite::Packed(r)) => Some(r),
                    _ => None,
                },
                _ => None,
            });
            tx_paged(
                self.paged
                    .borrow_mut()
                    .insert_ready(&TxLoad(self.trees), packed),
            )?;
            match writes.next() {
                Some(CaseWrite::Raw(tree, key, value)) => self.insert(tree, &key, &value)?,
                Some(CaseWrite::Remove(tree, key)) => self.remove(tree, &key)?,
                Some(CaseWrite::Packed(_)) | None => {}
            }
        }
        Ok(())
    }

    /// Removes one value (absent is fine).
    pub(crate) fn remove(&self, tree: CaseTree, key: &[u8]) -> Result<(), TxStorage> {
        match tree.layout() {
            Layout::Raw => {
                self.raw(tree).remove(key)?;
                Ok(())
            }
            Layout::Paged(l) => {
                tx_paged(self.paged.borrow_mut().remove(&TxLoad(self.trees), l, key))
            }
        }
    }

    /// Writes back the packed values the transaction changed.
    pub(super) fn write_paged(&self) -> Result<(), TxStorage> {
        let changes = self
            .paged
            .borrow_mut()
            .changed()
            .map_err(|c| TxStorage::Corrupt(c.0))?;
        let base = CaseTree::RAW.len();
        for (tree, key, value) in changes {
            let at = base + Phys::ALL.iter().position(|p| *p == tree).unwrap_or(0);
            match value {
                Some(v) => self.trees[at].insert(key, v)?,
                None => self.trees[at].remove(key)?,
            };
        }
        Ok(())
    }

    /// The value this transaction gave the counter `name` (a key of the `seq` tree), if it
    /// advanced it.
    pub(crate) fn counter(&self, name: &[u8]) -> Option<u64> {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Advances the counter `name` to `value`; written to the `seq` tree at the end of the
    /// transaction.
    pub(crate) fn set_counter(&self, name: &[u8], value: u64) {
        let mut counters = self.counters.borrow_mut();
        match counters.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => counters.push((name.to_vec(), value)),
        }
    }

    pub(super) fn write_counters(&self) -> Result<(), TxStorage> {
        for (name, value) in self.counters.borrow().iter() {
            self.insert(CaseTree::Seq, name, &value.to_be_bytes())?;
        }
        Ok(())
    }
}

/// A write or removal of one value of a case tree, made ready (for the packed trees: its index
/// bucket chosen, its key tagged) on any thread, for [`CaseTxn::write_batch`].
pub(crate) enum CaseWrite {
    Packed(paged::Ready),
    Raw(CaseTree, Vec<u8>, Vec<u8>),
    Remove(CaseTree, Vec<u8>),
}

impl CaseWrite {
    /// Writes `value` under `key`.
    pub(crate) fn put(tree: CaseTree, key: Vec<u8>, value: Vec<u8>) -> CaseWrite {
        match tree.layout() {
            Layout::Paged(l) => CaseWrite::Packed(paged::Ready::of(l, key, value)),
            Layout::Raw => CaseWrite::Raw(tree, key, value),
        }
    }

    /// Removes `key` (absent is fine).
    pub(crate) fn remove(tree: CaseTree, key: Vec<u8>) -> CaseWrite {
        CaseWrite::Remove(tree, key)
    }
}

/// A storage failure or conflict inside a transaction, or a stored value that cannot be read;
/// the store handles it (a conflict runs the transaction again).
pub(crate) enum TxStorage {
    Engine(UnabortableTransactionError),
    Corrupt(String),
}

impl From<UnabortableTransactionError> for TxStorage {
    fn from(e: UnabortableTransactionError) -> Self {
        TxStorage::Engine(e)
    }
}

impl TxStorage {
    pub(super) fn into_conflictable<E>(self) -> ConflictableTransactionError<Stop<E>> {
        match self {
            TxStorage::Engine(u) => u.into(),
            TxStorage::Corrupt(m) => ConflictableTransactionError::Abort(Stop::Corrupt(m)),
        }
    }
}

/// Why a case transaction stopped without writing.
pub(super) enum Stop<E> {
    /// The body's reason.
    Caller(E),
    /// A stored value could not be read or written.
    Corrupt(String),
}

pub(super) fn tx_paged<T>(
    r: Result<T, PagedError<UnabortableTransactionError>>,
) -> Result<T, TxStorage> {
    r.map_err(|e| match e {
        PagedError::Load(u) => TxStorage::Engine(u),
        PagedError::Corrupt(m) => TxStorage::Corrupt(m),
    })
}

/// How the body of a case transaction stops early: its own reason to write nothing, or a
/// storage failure.
pub(crate) enum TxError<E> {
    /// Nothing is written and the caller gets this error.
    Abort(E),
    /// Handled by the store.
    Storage(TxStorage),
}

impl<E> TxError<E> {
    /// The same stop with the caller's reason converted (a storage failure stays one).
    pub(crate) fn map_abort<F>(self, f: impl FnOnce(E) -> F) -> TxError<F> {
        match self {
            TxError::Abort(e) => TxError::Abort(f(e)),
            TxError::Storage(s) => TxError::Storage(s),
        }
    }
}

impl<E> From<TxStorage> for TxError<E> {
    fn from(e: TxStorage) -> Self {
        TxError::Storage(e)
    }
}
