#!/usr/bin/env python3
"""Golden fixtures for the Local Outlier Factor detector (src/detect/lof.rs), from scikit-learn.

    python3 tools/golden_lof.py   # writes tests/data/golden/lof_{fit,novelty,small_n,duplicates,wide}.json

Floats are written by json with repr (shortest round-trip form, up to 17 significant digits),
so the Rust tests can compare to 1e-9. Every fixture is checked here for distance ties at the
k-th-neighbour boundary: the neighbour sets must not depend on how ties are broken (tied rows
must be exact copies of each other), otherwise the script stops. Which algorithm scikit-learn
used is recorded as "sklearn_fit_method" (kd_tree; brute when n_neighbors >= n_samples // 2 or
there are more than 15 features).

lof_wide.json covers more than 15 features, where scikit-learn's default is brute force with
distances from ||x||^2 - 2 x.y + ||y||^2: fine on continuous data, but identical rows come out
at a small positive distance instead of 0. Its duplicate case therefore records the exact
reference, algorithm="kd_tree", which the Rust side must equal, and keeps the default (brute)
scores only for information ("sklearn_default_negative_outlier_factor").
"""
import json
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.neighbors import LocalOutlierFactor

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")
CONTAMINATIONS = [0.01, 0.05, 0.1, 0.123, 0.25, 0.5]


def fl(a):
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


def rows(X):
    return [[float(v) for v in r] for r in np.asarray(X, dtype=float)]


def pairwise(A, B):
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))


def candidates(d, k, exclude=None):
    """Rows that may be among the k nearest (with d the distances to every reference row), and
    whether the choice is unambiguous: no tie at the boundary, or all tied rows identical."""
    d = d.astype(float).copy()
    if exclude is not None:
        d[exclude] = np.inf
    kth = np.sort(d)[k - 1]
    slack = 1e-12 * max(kth, 1e-300)
    below = np.flatnonzero(d < kth - slack)
    tied = np.flatnonzero(np.abs(d - kth) <= slack)
    return below, tied


def unambiguous_mask(X, k, Q=None):
    """Per training row (or per query row of Q): does its LOF (score) not depend on tie-breaking?
    Needs its own neighbour set and those of all its possible neighbours to be unambiguous."""
    D = pairwise(X, X)
    n = len(X)

    def set_ok(below, tied):
        if len(below) + len(tied) == k:
            return True
        return bool(np.all(X[tied] == X[tied[0]]))

    own = []
    cand = []
    for a in range(n):
        below, tied = candidates(D[a], k, exclude=a)
        own.append(set_ok(below, tied))
        cand.append(np.concatenate([below, tied]))
    own = np.array(own)
    if Q is None:
        return [bool(own[a] and own[cand[a]].all()) for a in range(n)]
    DQ = pairwise(Q, X)
    out = []
    for q in range(len(Q)):
        below, tied = candidates(DQ[q], k)
        out.append(bool(set_ok(below, tied) and own[np.concatenate([below, tied])].all()))
    return out


def require(ok, what):
    if not all(ok):
        sys.exit(f"{what}: {len(ok) - sum(ok)} rows depend on tie-breaking; change the seed")


def fit_case(X, k, contaminations=CONTAMINATIONS):
    lof = LocalOutlierFactor(n_neighbors=k).fit(X)
    require(unambiguous_mask(X, lof.n_neighbors_), f"fit k={k}")
    return {
        "n_neighbors": k,
        "n_neighbors_": int(lof.n_neighbors_),
        "sklearn_fit_method": lof._fit_method,
        "negative_outlier_factor": fl(lof.negative_outlier_factor_),
        "k_distance": fl(lof._distances_fit_X_[:, -1]),
        "lrd": fl(lof._lrd),
        "offsets": [
            {
                "contamination": c,
                "offset": float(
                    LocalOutlierFactor(n_neighbors=k, contamination=c).fit(X).offset_
                ),
            }
            for c in contaminations
        ],
    }


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=0)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")


def main():
    warnings.simplefilter("ignore", UserWarning)  # "n_neighbors is greater than ..."
    os.makedirs(OUT, exist_ok=True)
    meta = {"sklearn": sklearn.__version__, "numpy": np.__version__}

    # --- lof_fit.json: 500 × 4 continuous rows, 4% of them outliers; k = 20 and 5.
    rng = np.random.default_rng(20240601)
    X = np.vstack([
        rng.normal(0.0, 1.0, size=(480, 4)) * [1.0, 2.5, 0.5, 10.0] + [0.0, 3.0, -1.0, 100.0],
        rng.uniform(-6.0, 6.0, size=(20, 4)) * [1.0, 2.5, 0.5, 10.0] + [0.0, 3.0, -1.0, 100.0],
    ])
    X = X[rng.permutation(len(X))]
    write("lof_fit.json", {**meta, "X": rows(X), "cases": [fit_case(X, 20), fit_case(X, 5)]})

    # --- lof_novelty.json: train 400 rows, score 100 new rows (20 of them outliers).
    rng = np.random.default_rng(7)
    Xt = rng.normal(0.0, 1.0, size=(400, 4))
    Xn = np.vstack([rng.normal(0.0, 1.0, size=(80, 4)), rng.uniform(-5.0, 5.0, size=(20, 4))])
    nov = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(Xt)
    require(unambiguous_mask(Xt, 20), "novelty training")
    require(unambiguous_mask(Xt, 20, Xn), "novelty queries")
    write("lof_novelty.json", {
        **meta,
        "n_neighbors": 20,
        "sklearn_fit_method": nov._fit_method,
        "X_train": rows(Xt),
        "X_new": rows(Xn),
        "negative_outlier_factor": fl(nov.negative_outlier_factor_),
        "score_samples": fl(nov.score_samples(Xn)),
    })

    # --- lof_small_n.json: n_samples <= n_neighbors (k is clamped to n - 1).
    rng = np.random.default_rng(11)
    cases = []
    for n, d, k in [(8, 3, 20), (2, 2, 20), (5, 2, 3), (21, 2, 20)]:
        X = rng.normal(0.0, 1.0, size=(n, d))
        Q = np.vstack([rng.normal(0.0, 1.0, size=(3, d)), rng.uniform(-4, 4, size=(1, d))])
        lof = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(X)
        require(unambiguous_mask(X, lof.n_neighbors_), f"small n={n}")
        require(unambiguous_mask(X, lof.n_neighbors_, Q), f"small n={n} queries")
        cases.append({
            "n_neighbors": k,
            "n_neighbors_": int(lof.n_neighbors_),
            "sklearn_fit_method": lof._fit_method,
            "X": rows(X),
            "X_new": rows(Q),
            "negative_outlier_factor": fl(lof.negative_outlier_factor_),
            "score_samples": fl(lof.score_samples(Q)),
        })
    write("lof_small_n.json", {**meta, "cases": cases})

    # --- lof_duplicates.json: 200 continuous rows in 3-D, one row copied to 50 copies, ten rows
    # copied to 5 copies each; k = 5, 20 (fewer than the big group) and 60 (more).
    rng = np.random.default_rng(5)
    base = rng.normal(0.0, 1.0, size=(200, 3))
    extra = [np.repeat(base[:1], 49, axis=0)]
    for i in range(1, 11):
        extra.append(np.repeat(base[i:i + 1], 4, axis=0))
    X = np.vstack([base] + extra)
    X = X[rng.permutation(len(X))]
    Q = np.vstack([
        base[:1], base[:1],                     # copies of the 50-copy row
        base[1:3],                              # copies of 5-copy rows
        base[:1] + [0.05, 0.0, 0.0],            # just off the pile
        base[:1] + [0.0, -0.3, 0.2],
        rng.normal(0.0, 1.0, size=(6, 3)),
        rng.uniform(-4, 4, size=(2, 3)),
    ])
    cases = []
    for k in [5, 20, 60]:
        lof = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(X)
        mask = unambiguous_mask(X, lof.n_neighbors_)
        require(mask, f"duplicates k={k}")
        require(unambiguous_mask(X, lof.n_neighbors_, Q), f"duplicates k={k} queries")
        nof = lof.negative_outlier_factor_
        if not np.all(np.isfinite(nof)):
            sys.exit(f"duplicates k={k}: scikit-learn gave non-finite scores")
        cases.append({
            "n_neighbors": k,
            "n_neighbors_": int(lof.n_neighbors_),
            "sklearn_fit_method": lof._fit_method,
            "negative_outlier_factor": fl(nof),
            "unambiguous": mask,
            "n_unambiguous": int(sum(mask)),
            "score_samples": fl(lof.score_samples(Q)),
        })
    write("lof_duplicates.json", {**meta, "X": rows(X), "X_new": rows(Q), "cases": cases})

    # --- lof_wide.json: 20 features. Continuous rows (scikit-learn's default = brute force), and
    # rows with duplicates (reference: algorithm="kd_tree", exact distances).
    rng = np.random.default_rng(21)
    Xc = np.vstack([rng.normal(0.0, 1.0, size=(190, 20)), rng.uniform(-5, 5, size=(10, 20))])
    Qc = np.vstack([rng.normal(0.0, 1.0, size=(15, 20)), rng.uniform(-5, 5, size=(5, 20))])
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(Xc)
    require(unambiguous_mask(Xc, 20), "wide continuous")
    require(unambiguous_mask(Xc, 20, Qc), "wide continuous queries")
    continuous = {
        "n_neighbors": 20,
        "sklearn_fit_method": lof._fit_method,
        "X": rows(Xc),
        "X_new": rows(Qc),
        "negative_outlier_factor": fl(lof.negative_outlier_factor_),
        "score_samples": fl(lof.score_samples(Qc)),
    }
    rng = np.random.default_rng(22)
    base = rng.normal(0.0, 1.0, size=(150, 20)) * 3.0 + 5.0
    Xd = np.vstack([base, np.repeat(base[:1], 49, axis=0)]
                   + [np.repeat(base[i:i + 1], 4, axis=0) for i in range(1, 6)])
    Xd = Xd[rng.permutation(len(Xd))]
    require(unambiguous_mask(Xd, 20), "wide duplicates")
    exact = LocalOutlierFactor(n_neighbors=20, algorithm="kd_tree").fit(Xd)
    default = LocalOutlierFactor(n_neighbors=20).fit(Xd)
    gap = np.abs(default.negative_outlier_factor_ - exact.negative_outlier_factor_)
    n_differ = int(np.sum(gap > 1e-9 * np.maximum(1.0, np.abs(exact.negative_outlier_factor_))))
    print(f"lof_wide duplicates: scikit-learn's default ({default._fit_method}) differs from "
          f"kd_tree on {n_differ} rows")
    write("lof_wide.json", {
        **meta,
        "continuous": continuous,
        "duplicates": {
            "n_neighbors": 20,
            "X": rows(Xd),
            "negative_outlier_factor": fl(exact.negative_outlier_factor_),
            "sklearn_default_fit_method": default._fit_method,
            "sklearn_default_negative_outlier_factor": fl(default.negative_outlier_factor_),
            "n_default_differs": n_differ,
        },
    })


if __name__ == "__main__":
    main()
