//! Exact k-nearest-neighbour search in Euclidean space: a k-d tree with a run-time dimension.
//!
//! - Nodes split at the median of the dimension of largest spread (like scikit-learn's KDTree);
//!   a node becomes a leaf at `leaf_size` points or fewer (default 128), or when all its points
//!   are identical. Every node keeps the tight bounding box of its points.
//! - The points are copied once into tree order, and each leaf is also stored column-major, so
//!   the distances from a query to a whole leaf are computed SIMD-across-points (AVX when the
//!   CPU has it, detected at run time; SSE2 otherwise). Each point's squared distance is still
//!   the sequential sum over columns of `(q[j] - p[j])²`, the same operations in the same order
//!   as scikit-learn's KDTree, so the same bits; the Euclidean distance is its square root.
//! - Batch queries ([`KdTree::knn_all`], [`KdTree::knn_batch`]) go by groups of up to 256
//!   nearby queries (a subtree of the data's own tree, or of a tree built over the queries):
//!   one traversal per group, nearer child first, a node skipped when the box-to-box distance
//!   exceeds the largest current k-th distance of the group, a leaf skipped for one query when
//!   its own box distance exceeds that query's k-th distance. Groups run in parallel on rayon.
//! - Every bound (point-to-box, box-to-box) is made of per-dimension terms that are never larger
//!   in floating point than the matching terms of a point's distance, summed in the same order,
//!   so pruning never drops a point the brute force would keep: the search is exact.
//!
//! ## Ties
//! Neighbours are ranked by (squared distance, original row index): among points at exactly
//! the same distance the lower row index wins, whatever the tree shape or thread count. The
//! result is therefore a deterministic function of the data and equals [`brute_knn`]'s. (Nodes
//! whose bound *equals* the current k-th distance are still visited so that this rule holds.)

use rayon::prelude::*;

/// Default number of points in a leaf.
pub const DEFAULT_LEAF_SIZE: usize = 128;

/// Largest number of queries searched together by the batch queries.
const GROUP_SIZE: usize = 256;

const NO_CHILD: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Range of tree positions `start..end` of this node's points.
    start: usize,
    end: usize,
    /// Children (node ids); `NO_CHILD` for a leaf.
    left: usize,
    right: usize,
}

/// An exact k-d tree over `n` points of `dim` coordinates.
#[derive(Debug, Clone)]
pub struct KdTree {
    dim: usize,
    /// Points in tree order, row-major.
    points: Vec<f64>,
    /// The same points leaf by leaf in column-major blocks: the leaf of positions `s..e` holds
    /// coordinate j of position `s + p` at `s * dim + j * (e - s) + p`, so that one leaf's
    /// distances are computed for several points at once (SIMD across points).
    columns: Vec<f64>,
    /// Run the leaf kernel compiled for AVX (checked at build time on x86_64).
    avx: bool,
    /// Original row index of each tree position.
    index: Vec<usize>,
    nodes: Vec<Node>,
    /// Per node: `dim` lower bounds then `dim` upper bounds.
    bounds: Vec<f64>,
}

/// The k nearest neighbours of a batch of queries, row-major (`rows × k`), each row ascending by
/// (distance, index). Every row has exactly k entries; a query with a non-finite coordinate
/// (which callers should reject first) gets NaN distances and index `usize::MAX`.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    pub k: usize,
    /// Euclidean distances (square roots of the squared sums).
    pub distances: Vec<f64>,
    /// Original row indices of the neighbours in the tree's data.
    pub indices: Vec<usize>,
}

impl Neighbors {
    pub fn rows(&self) -> usize {
        self.distances.len().checked_div(self.k).unwrap_or(0)
    }
    pub fn distances_of(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
    pub fn indices_of(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
}

/// A bounded list of the best k (squared distance, index) pairs, kept sorted ascending.
#[derive(Debug, Clone)]
pub struct KnnHeap {
    k: usize,
    items: Vec<(f64, usize)>,
    /// Distances of one leaf.
    scratch: Vec<f64>,
}

impl KnnHeap {
    pub fn new(k: usize) -> KnnHeap {
        KnnHeap {
            k,
            items: Vec::with_capacity(k + 1),
            scratch: Vec::new(),
        }
    }
    pub fn clear(&mut self) {
        self.items.clear();
    }
    /// The sorted (squared distance, index) pairs found so far.
    pub fn items(&self) -> &[(f64, usize)] {
        &self.items
    }
    /// The current k-th best squared distance (infinite until k items are held).
    #[inline]
    fn bound(&self) -> f64 {
        if self.items.len() < self.k {
            f64::INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }
    #[inline]
    fn push(&mut self, d2: f64, idx: usize) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k {
            let (wd, wi) = self.items[self.k - 1];
            if d2 > wd || (d2 == wd && idx > wi) {
                return;
            }
            self.items.pop();
        }
        let mut pos = self.items.len();
        while pos > 0 {
            let (pd, pi) = self.items[pos - 1];
            if pd > d2 || (pd == d2 && pi > idx) {
                pos -= 1;
            } else {
                break;
            }
        }
        self.items.insert(pos, (d2, idx));
    }
}

/// Squared Euclidean distance, summed in column order.
#[inline]
pub fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Squared distances from `q` to the points of one column-major leaf block (`out.len()`
/// points): per point the same operations in the same order as [`squared_distance`], so the
/// same bits, but vectorized across points. Returns the smallest of them.
#[inline(always)]
fn leaf_distances_generic(q: &[f64], block: &[f64], out: &mut [f64]) -> f64 {
    let len = out.len();
    let mut min = [f64::INFINITY; LANES];
    let full = len - len % LANES;
    // Blocks of LANES points, the accumulators kept in registers across the dimensions.
    for (c, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
        let mut acc = [0.0f64; LANES];
        for (&qj, col) in q.iter().zip(block.chunks_exact(len)) {
            for (a, &x) in acc.iter_mut().zip(&col[c * LANES..(c + 1) * LANES]) {
                let d = qj - x;
                *a += d * d;
            }
        }
        o.copy_from_slice(&acc);
        for (m, a) in min.iter_mut().zip(&acc) {
            *m = m.min(*a);
        }
    }
    let mut lowest = min.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    for (p, o) in out.iter_mut().enumerate().skip(full) {
        let mut s = 0.0;
        for (&qj, col) in q.iter().zip(block.chunks_exact(len)) {
            let d = qj - col[p];
            s += d * d;
        }
        *o = s;
        lowest = lowest.min(s);
    }
    lowest
}

/// Points per register block of the leaf kernel.
const LANES: usize = 8;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn leaf_distances_avx(q: &[f64], block: &[f64], out: &mut [f64]) -> f64 {
    // AVX without FMA: the same IEEE operations as the generic kernel, four lanes at a time.
    leaf_distances_generic(q, block, out)
}

#[inline]
fn leaf_distances(avx: bool, q: &[f64], block: &[f64], out: &mut [f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: `avx` is only true when the CPU reported AVX support (`avx_available`).
        return unsafe { leaf_distances_avx(q, block, out) };
    }
    let _ = avx;
    leaf_distances_generic(q, block, out)
}

fn avx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Squared distance from `q` to the box `[lo, hi]`, with terms that never exceed the matching
/// terms of [`squared_distance`] to a point inside the box.
#[inline]
fn box_distance(q: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let mut s = 0.0;
    for ((x, l), h) in q.iter().zip(lo).zip(hi) {
        // At most one of the two is positive; adding an exact 0.0 changes nothing. Branch-free.
        let d = (l - x).max(0.0) + (x - h).max(0.0);
        s += d * d;
    }
    s
}

impl KdTree {
    /// Builds a tree over the row-major `data` of `data.len() / dim` points.
    ///
    /// # Panics
    /// If `dim == 0` or `data.len()` is not a multiple of `dim` (a caller's bug, not input).
    /// Non-finite coordinates do not panic but make results meaningless: validate first.
    pub fn build(data: &[f64], dim: usize, leaf_size: usize) -> KdTree {
        assert!(dim > 0, "k-d tree needs at least one dimension");
        assert!(
            data.len().is_multiple_of(dim),
            "k-d tree data of {} values is not a multiple of dim {dim}",
            data.len()
        );
        let n = data.len() / dim;
        let leaf_size = leaf_size.max(1);
        let mut perm: Vec<usize> = (0..n).collect();
        let mut tree = KdTree {
            dim,
            points: Vec::new(),
            columns: Vec::new(),
            avx: avx_available(),
            index: Vec::new(),
            nodes: Vec::with_capacity(2 * n / leaf_size + 2),
            bounds: Vec::new(),
        };
        if n > 0 {
            tree.build_node(data, &mut perm, 0, n, leaf_size);
        }
        tree.points = Vec::with_capacity(n * dim);
        for &i in &perm {
            tree.points.extend_from_slice(&data[i * dim..(i + 1) * dim]);
        }
        tree.columns = vec![0.0; n * dim];
        for nd in tree.nodes.iter().filter(|nd| nd.left == NO_CHILD) {
            let len = nd.end - nd.start;
            let block = &mut tree.columns[nd.start * dim..nd.end * dim];
            for p in 0..len {
                for j in 0..dim {
                    block[j * len + p] = tree.points[(nd.start + p) * dim + j];
                }
            }
        }
        tree.index = perm;
        tree
    }

    fn build_node(
        &mut self,
        data: &[f64],
        perm: &mut [usize],
        start: usize,
        end: usize,
        leaf_size: usize,
    ) -> usize {
        let dim = self.dim;
        let id = self.nodes.len();
        let mut lo = vec![f64::INFINITY; dim];
        let mut hi = vec![f64::NEG_INFINITY; dim];
        for &i in &perm[start..end] {
            for (j, &v) in data[i * dim..(i + 1) * dim].iter().enumerate() {
                if v < lo[j] {
                    lo[j] = v;
                }
                if v > hi[j] {
                    hi[j] = v;
                }
            }
        }
        let (split_dim, spread) =
            lo.iter()
                .zip(&hi)
                .map(|(l, h)| h - l)
                .enumerate()
                .fold(
                    (0, 0.0),
                    |best, (j, s)| if s > best.1 { (j, s) } else { best },
                );
        self.bounds.extend_from_slice(&lo);
        self.bounds.extend_from_slice(&hi);
        self.nodes.push(Node {
            start,
            end,
            left: NO_CHILD,
            right: NO_CHILD,
        });
        // Not `spread > 0.0` negated: a NaN spread (invalid input) also makes a leaf.
        let splittable = spread > 0.0;
        if end - start <= leaf_size || !splittable {
            return id;
        }
        let mid = (end - start) / 2;
        perm[start..end].select_nth_unstable_by(mid, |&a, &b| {
            data[a * dim + split_dim].total_cmp(&data[b * dim + split_dim])
        });
        let left = self.build_node(data, perm, start, start + mid, leaf_size);
        let right = self.build_node(data, perm, start + mid, end, leaf_size);
        self.nodes[id].left = left;
        self.nodes[id].right = right;
        id
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.dim
    }

    #[inline]
    fn node_box(&self, node: usize) -> (&[f64], &[f64]) {
        let b = &self.bounds[node * 2 * self.dim..(node + 1) * 2 * self.dim];
        b.split_at(self.dim)
    }

    /// Fills `heap` (cleared first, capacity k) with the k nearest points to `q`, skipping the
    /// point whose original row index is `exclude` (if any). Fewer than k if the tree is smaller.
    pub fn query_into(&self, q: &[f64], exclude: Option<usize>, heap: &mut KnnHeap) {
        heap.clear();
        if self.nodes.is_empty() || q.len() != self.dim {
            return;
        }
        self.search(0, q, exclude.unwrap_or(usize::MAX), heap);
    }

    fn search(&self, node: usize, q: &[f64], exclude: usize, heap: &mut KnnHeap) {
        let nd = self.nodes[node];
        if nd.left == NO_CHILD {
            let len = nd.end - nd.start;
            let block = &self.columns[nd.start * self.dim..nd.end * self.dim];
            let mut buf = std::mem::take(&mut heap.scratch);
            buf.clear();
            buf.resize(len, 0.0);
            let lowest = leaf_distances(self.avx, q, block, &mut buf);
            if lowest <= heap.bound() {
                for (off, &d2) in buf.iter().enumerate() {
                    if d2 <= heap.bound() {
                        let idx = self.index[nd.start + off];
                        if idx != exclude {
                            heap.push(d2, idx);
                        }
                    }
                }
            }
            heap.scratch = buf;
            return;
        }
        let (llo, lhi) = self.node_box(nd.left);
        let dl = box_distance(q, llo, lhi);
        let (rlo, rhi) = self.node_box(nd.right);
        let dr = box_distance(q, rlo, rhi);
        let (first, d_first, second, d_second) = if dl <= dr {
            (nd.left, dl, nd.right, dr)
        } else {
            (nd.right, dr, nd.left, dl)
        };
        if d_first <= heap.bound() {
            self.search(first, q, exclude, heap);
        }
        if d_second <= heap.bound() {
            self.search(second, q, exclude, heap);
        }
    }

    /// The k nearest neighbours of `q` as (squared distance, original index), ascending.
    pub fn query(&self, q: &[f64], k: usize, exclude: Option<usize>) -> Vec<(f64, usize)> {
        let mut heap = KnnHeap::new(k);
        self.query_into(q, exclude, &mut heap);
        heap.items
    }

    /// Groups of nearby points for batched queries: the (start, end) position ranges of the
    /// largest subtrees of at most `max` points (or leaves), in tree order.
    fn group_ranges(&self, max: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut stack = Vec::new();
        if !self.nodes.is_empty() {
            stack.push(0);
        }
        while let Some(id) = stack.pop() {
            let nd = self.nodes[id];
            if nd.left == NO_CHILD || nd.end - nd.start <= max {
                out.push((nd.start, nd.end));
            } else {
                stack.push(nd.right);
                stack.push(nd.left);
            }
        }
        out
    }

    /// k nearest neighbours of a group of nearby queries (row-major `queries`, inside the box
    /// `qlo..=qhi`), one traversal for the whole group: a node is skipped when the box-to-box
    /// distance exceeds the largest current k-th distance of the group, and a leaf is scanned
    /// for one query only if that query's own distance to the leaf's box is within its bound.
    /// `exclude[i]`, if given, is the original index to skip for query i.
    fn search_group(&self, g: &mut Group, queries: &[f64], exclude: Option<&[usize]>) {
        let dim = self.dim;
        let m = queries.len() / dim;
        let mut stack = std::mem::take(&mut g.stack);
        stack.clear();
        if !self.nodes.is_empty() {
            stack.push((0.0, 0));
        }
        let mut max_bound = f64::INFINITY;
        while let Some((lb, node)) = stack.pop() {
            if lb > max_bound {
                continue;
            }
            let nd = self.nodes[node];
            if nd.left == NO_CHILD {
                let len = nd.end - nd.start;
                let block = &self.columns[nd.start * dim..nd.end * dim];
                let (lo, hi) = self.node_box(node);
                g.buf.clear();
                g.buf.resize(len, 0.0);
                for (i, q) in queries.chunks_exact(dim).enumerate() {
                    let skip = exclude.map_or(usize::MAX, |e| e[i]);
                    let heap = &mut g.heaps[i];
                    if box_distance(q, lo, hi) > heap.bound() {
                        continue;
                    }
                    if leaf_distances(self.avx, q, block, &mut g.buf) > heap.bound() {
                        continue;
                    }
                    for (off, &d2) in g.buf.iter().enumerate() {
                        if d2 <= heap.bound() {
                            let idx = self.index[nd.start + off];
                            if idx != skip {
                                heap.push(d2, idx);
                            }
                        }
                    }
                }
                max_bound = g.heaps[..m].iter().map(KnnHeap::bound).fold(0.0, f64::max);
                continue;
            }
            let (llo, lhi) = self.node_box(nd.left);
            let dl = box_box_distance(&g.qlo, &g.qhi, llo, lhi);
            let (rlo, rhi) = self.node_box(nd.right);
            let dr = box_box_distance(&g.qlo, &g.qhi, rlo, rhi);
            // Nearer child on top of the stack, so it is searched first.
            let (near, d_near, far, d_far) = if dl <= dr {
                (nd.left, dl, nd.right, dr)
            } else {
                (nd.right, dr, nd.left, dl)
            };
            if d_far <= max_bound {
                stack.push((d_far, far));
            }
            if d_near <= max_bound {
                stack.push((d_near, near));
            }
        }
        g.stack = stack;
    }

    /// For every point of the tree, its k nearest neighbours among the *other* points (its own
    /// row is excluded by index, so exact duplicates are neighbours at distance 0). `k` is
    /// clamped to `len() - 1`. Rows are in original order. Runs on the rayon pool, one leaf of
    /// queries per task.
    pub fn knn_all(&self, k: usize) -> Neighbors {
        let n = self.len();
        let k = k.min(n.saturating_sub(1));
        if k == 0 {
            return Neighbors {
                k,
                distances: vec![0.0; n * k],
                indices: vec![0; n * k],
            };
        }
        let dim = self.dim;
        let groups = self.group_ranges(GROUP_SIZE);
        let results: Vec<(usize, Vec<f64>, Vec<usize>)> = groups
            .par_iter()
            .map_init(
                || Group::new(dim, k),
                |g, &(s, e)| {
                    let queries = &self.points[s * dim..e * dim];
                    g.reset(queries, e - s);
                    self.search_group(g, queries, Some(&self.index[s..e]));
                    let (d, i) = g.take_results(e - s);
                    (s, d, i)
                },
            )
            .collect();
        let mut distances = vec![0.0; n * k];
        let mut indices = vec![0usize; n * k];
        for (s, d, i) in results {
            for r in 0..d.len() / k {
                let orig = self.index[s + r];
                distances[orig * k..(orig + 1) * k].copy_from_slice(&d[r * k..(r + 1) * k]);
                indices[orig * k..(orig + 1) * k].copy_from_slice(&i[r * k..(r + 1) * k]);
            }
        }
        Neighbors {
            k,
            distances,
            indices,
        }
    }

    /// The k nearest tree points of each row of the row-major `queries` (`dim` columns);
    /// nothing is excluded. `k` is clamped to `len()`. The queries are first grouped by a k-d
    /// tree of their own, then each group is searched as in [`Self::knn_all`], on the rayon
    /// pool.
    ///
    /// # Panics
    /// If `queries.len()` is not a multiple of `dim`.
    pub fn knn_batch(&self, queries: &[f64], k: usize) -> Neighbors {
        assert!(
            queries.len().is_multiple_of(self.dim),
            "query width must be dim"
        );
        let dim = self.dim;
        let m = queries.len() / dim;
        let k = k.min(self.len());
        if k == 0 || m == 0 {
            return Neighbors {
                k,
                distances: vec![0.0; m * k],
                indices: vec![0; m * k],
            };
        }
        let qtree = KdTree::build(queries, dim, GROUP_SIZE);
        let groups = qtree.group_ranges(GROUP_SIZE);
        let results: Vec<(usize, Vec<f64>, Vec<usize>)> = groups
            .par_iter()
            .map_init(
                || Group::new(dim, k),
                |g, &(s, e)| {
                    let qs = &qtree.points[s * dim..e * dim];
                    g.reset(qs, e - s);
                    self.search_group(g, qs, None);
                    let (d, i) = g.take_results(e - s);
                    (s, d, i)
                },
            )
            .collect();
        let mut distances = vec![0.0; m * k];
        let mut indices = vec![0usize; m * k];
        for (s, d, i) in results {
            for r in 0..d.len() / k {
                let orig = qtree.index[s + r];
                distances[orig * k..(orig + 1) * k].copy_from_slice(&d[r * k..(r + 1) * k]);
                indices[orig * k..(orig + 1) * k].copy_from_slice(&i[r * k..(r + 1) * k]);
            }
        }
        Neighbors {
            k,
            distances,
            indices,
        }
    }
}

/// Per-thread state of a group search.
struct Group {
    dim: usize,
    k: usize,
    heaps: Vec<KnnHeap>,
    qlo: Vec<f64>,
    qhi: Vec<f64>,
    buf: Vec<f64>,
    stack: Vec<(f64, usize)>,
}

impl Group {
    fn new(dim: usize, k: usize) -> Group {
        Group {
            dim,
            k,
            heaps: Vec::new(),
            qlo: vec![0.0; dim],
            qhi: vec![0.0; dim],
            buf: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Prepares `m` empty heaps and the bounding box of the row-major `queries`.
    fn reset(&mut self, queries: &[f64], m: usize) {
        while self.heaps.len() < m {
            self.heaps.push(KnnHeap::new(self.k));
        }
        for h in &mut self.heaps[..m] {
            h.clear();
        }
        self.qlo.fill(f64::INFINITY);
        self.qhi.fill(f64::NEG_INFINITY);
        for q in queries.chunks_exact(self.dim) {
            for (j, &v) in q.iter().enumerate() {
                self.qlo[j] = self.qlo[j].min(v);
                self.qhi[j] = self.qhi[j].max(v);
            }
        }
    }

    /// Distances (square roots) and indices of the first `m` heaps, row-major `m × k`.
    fn take_results(&self, m: usize) -> (Vec<f64>, Vec<usize>) {
        let mut d = Vec::with_capacity(m * self.k);
        let mut i = Vec::with_capacity(m * self.k);
        for h in &self.heaps[..m] {
            for &(d2, idx) in h.items() {
                d.push(d2.sqrt());
                i.push(idx);
            }
            // Only a query with non-finite coordinates finds fewer than k: keep rows aligned.
            for _ in h.items().len()..self.k {
                d.push(f64::NAN);
                i.push(usize::MAX);
            }
        }
        (d, i)
    }
}

/// Squared distance between two boxes (0 if they overlap), a lower bound on the computed
/// squared distance between any point of one and any point of the other.
#[inline]
fn box_box_distance(alo: &[f64], ahi: &[f64], blo: &[f64], bhi: &[f64]) -> f64 {
    let mut s = 0.0;
    for j in 0..alo.len() {
        let d = (blo[j] - ahi[j]).max(0.0) + (alo[j] - bhi[j]).max(0.0);
        s += d * d;
    }
    s
}

/// Reference implementation: the k nearest rows of row-major `data` to `q` by brute force, as
/// (squared distance, index) ascending with the same tie rule as the tree.
pub fn brute_knn(
    data: &[f64],
    dim: usize,
    q: &[f64],
    k: usize,
    exclude: Option<usize>,
) -> Vec<(f64, usize)> {
    let mut all: Vec<(f64, usize)> = data
        .chunks_exact(dim)
        .enumerate()
        .filter(|(i, _)| Some(*i) != exclude)
        .map(|(i, p)| (squared_distance(q, p), i))
        .collect();
    let order = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if k < all.len() {
        all.select_nth_unstable_by(k, order);
        all.truncate(k);
    }
    all.sort_by(order);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a small deterministic generator for the tests.
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn random_data(n: usize, dim: usize, seed: u64, grid: Option<f64>) -> Vec<f64> {
        let mut rng = Rng(seed);
        (0..n * dim)
            .map(|_| {
                let v = rng.next_f64() * 10.0 - 5.0;
                grid.map_or(v, |g| (v / g).round() * g)
            })
            .collect()
    }

    fn check_all(data: &[f64], dim: usize, k: usize, leaf: usize) {
        let n = data.len() / dim;
        let tree = KdTree::build(data, dim, leaf);
        let nb = tree.knn_all(k);
        let keff = k.min(n - 1);
        assert_eq!(nb.k, keff);
        for i in 0..n {
            let want = brute_knn(data, dim, &data[i * dim..(i + 1) * dim], keff, Some(i));
            let got_i = nb.indices_of(i);
            let got_d = nb.distances_of(i);
            for (j, &(d2, wi)) in want.iter().enumerate() {
                assert_eq!(got_i[j], wi, "n={n} dim={dim} k={k} row {i} neighbour {j}");
                assert_eq!(got_d[j].to_bits(), d2.sqrt().to_bits());
            }
        }
        // Novelty-style queries: fresh points plus copies of tree points.
        let mut queries = random_data(40, dim, 99 + dim as u64, None);
        queries.extend_from_slice(&data[..dim * 10.min(n)]);
        let nq = queries.len() / dim;
        let kq = (k + 1).min(n);
        let qb = tree.knn_batch(&queries, kq);
        for i in 0..nq {
            let q = &queries[i * dim..(i + 1) * dim];
            let want = brute_knn(data, dim, q, kq, None);
            let got: Vec<usize> = qb.indices_of(i).to_vec();
            let want_i: Vec<usize> = want.iter().map(|w| w.1).collect();
            assert_eq!(got, want_i, "query {i} dim={dim} k={kq}");
            // The one-query path agrees too, bit for bit.
            assert_eq!(tree.query(q, kq, None), want, "single query {i}");
        }
    }

    #[test]
    fn matches_brute_force_continuous() {
        for (dim, n) in [(1, 300), (2, 500), (3, 400), (7, 600), (12, 800), (40, 200)] {
            let data = random_data(n, dim, 7 + dim as u64, None);
            for k in [1, 5, 20] {
                check_all(&data, dim, k, 16);
            }
        }
    }

    #[test]
    fn matches_brute_force_with_ties_and_duplicates() {
        // A coarse grid makes many equal distances and exact duplicate points.
        for (dim, n, grid) in [(1, 300, 1.0), (2, 500, 1.0), (3, 400, 2.5), (5, 300, 2.5)] {
            let data = random_data(n, dim, 31 + dim as u64, Some(grid));
            for k in [1, 4, 20, 60] {
                check_all(&data, dim, k, 8);
            }
        }
        // Many copies of one point, more than k.
        let mut data = random_data(100, 3, 5, None);
        for _ in 0..50 {
            data.extend_from_slice(&[0.25, -1.0, 2.0]);
        }
        for k in [1, 20, 49, 50, 80] {
            check_all(&data, 3, k, 16);
        }
    }

    #[test]
    fn all_identical_and_tiny_inputs() {
        let data = vec![1.5; 30 * 4];
        check_all(&data, 4, 20, 4);
        let tree = KdTree::build(&data, 4, 4);
        let nb = tree.knn_all(20);
        assert!(nb.distances.iter().all(|&d| d == 0.0));
        // Two points, k larger than possible.
        let two = [0.0, 0.0, 3.0, 4.0];
        let t = KdTree::build(&two, 2, 16);
        let nb = t.knn_all(20);
        assert_eq!(nb.k, 1);
        assert_eq!(nb.indices, vec![1, 0]);
        assert_eq!(nb.distances, vec![5.0, 5.0]);
        // One point, and empty trees, do not panic.
        assert_eq!(KdTree::build(&[1.0], 1, 16).knn_all(3).k, 0);
        let empty = KdTree::build(&[], 3, 16);
        assert!(empty.is_empty());
        assert_eq!(empty.knn_batch(&[0.0, 0.0, 0.0], 5).k, 0);
        assert!(empty.query(&[0.0, 0.0, 0.0], 5, None).is_empty());
    }

    #[test]
    fn many_query_groups_with_ties() {
        // More than one group of queries (groups hold up to GROUP_SIZE points), on a grid.
        let data = random_data(3000, 3, 77, Some(1.0));
        check_all(&data, 3, 10, 16);
        let data = random_data(2000, 6, 78, None);
        check_all(&data, 6, 7, 32);
    }

    #[test]
    fn unsplittable_leaf_larger_than_a_group() {
        // 600 copies of one point cannot be split: one leaf of 600 > GROUP_SIZE queries.
        let mut data = random_data(200, 2, 9, None);
        for _ in 0..600 {
            data.extend_from_slice(&[0.5, 0.5]);
        }
        check_all(&data, 2, 20, 16);
        let tree = KdTree::build(&data, 2, 16);
        let queries = vec![0.5; 2 * 700];
        let nb = tree.knn_batch(&queries, 20);
        assert_eq!(nb.rows(), 700);
        assert!(nb.distances.iter().all(|&d| d == 0.0));
        // Lowest indices win among the tied copies.
        assert_eq!(
            nb.indices_of(699),
            (200..220).collect::<Vec<_>>().as_slice()
        );
    }

    #[test]
    fn non_finite_queries_keep_rows_aligned() {
        let data = random_data(300, 2, 4, None);
        let tree = KdTree::build(&data, 2, 16);
        let queries = [0.0, 0.0, f64::NAN, 1.0, 1.0, 1.0];
        let nb = tree.knn_batch(&queries, 5);
        assert_eq!(nb.rows(), 3);
        assert!(nb.distances_of(1).iter().all(|d| d.is_nan()));
        assert_eq!(
            nb.indices_of(2),
            tree.knn_batch(&[1.0, 1.0], 5).indices_of(0)
        );
    }

    #[test]
    fn leaf_sizes_do_not_change_results() {
        let data = random_data(700, 6, 1234, Some(0.5));
        let reference = KdTree::build(&data, 6, 1).knn_all(15);
        for leaf in [2, 7, 32, 1000] {
            assert_eq!(KdTree::build(&data, 6, leaf).knn_all(15), reference);
        }
    }
}
