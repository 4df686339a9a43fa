#!/usr/bin/env python3
"""Golden fixtures for src/detect/iforest.rs, from scikit-learn's IsolationForest.

Writes, relative to the crate root (the parent of this script's folder):

  tests/data/golden/iforest_cn.json      sklearn's _average_path_length c(n) for a few n
  tests/data/golden/iforest_parity.json  a labelled 2,000 x 6 data set, sklearn's
                                         score_samples averaged over random_state 0..9
                                         (n_estimators=200) and the ROC-AUC of -score

Run once and commit the output (the Rust tests never need Python):

  python3 tools/golden_iforest.py

Made with scikit-learn 1.9.1 and numpy; the data depend only on numpy's default_rng(20240611).
"""

import json
import pathlib

import numpy as np
import scipy.stats
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.metrics import roc_auc_score

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "golden"

SEED = 20240611
N_ROWS = 2000
N_COLS = 6
N_SEEDS = 10
N_ESTIMATORS = 200


def sig10(v):
    """A float rounded to 10 significant digits."""
    return float(f"{v:.10g}")


def make_data():
    """Two correlated Gaussian clusters plus 5% outliers of three kinds."""
    rng = np.random.default_rng(SEED)
    n_out = N_ROWS // 20  # 100 outliers
    n_in = N_ROWS - n_out
    # A correlated covariance: unit variances, pairwise correlation 0.6.
    cov = np.full((N_COLS, N_COLS), 0.6) + 0.4 * np.eye(N_COLS)
    mean_a = np.zeros(N_COLS)
    mean_b = np.array([8.0, 8.0, 0.0, 8.0, 0.0, 8.0])
    n_a = int(n_in * 0.65)
    a = rng.multivariate_normal(mean_a, cov, size=n_a)
    b = rng.multivariate_normal(mean_b, cov, size=n_in - n_a)
    inliers = np.vstack([a, b])

    kinds = []
    # 1. Far in one feature only: a normal point of cluster A, one feature shifted by 6-9 sd.
    k1 = n_out // 3
    o1 = rng.multivariate_normal(mean_a, cov, size=k1)
    feat = rng.integers(0, N_COLS, size=k1)
    o1[np.arange(k1), feat] += rng.choice([-1.0, 1.0], size=k1) * rng.uniform(6, 9, size=k1)
    kinds += ["one_feature"] * k1
    shifted = [int(f) for f in feat]
    # 2. Far in all features: uniform in a wide box, away from both clusters.
    k2 = n_out // 3
    o2 = rng.uniform(-14, 22, size=(k2, N_COLS))
    kinds += ["all_features"] * k2
    # 3. Between the clusters: around the midpoint, with a small spread.
    k3 = n_out - k1 - k2
    o3 = (mean_a + mean_b) / 2 + rng.normal(0, 0.7, size=(k3, N_COLS))
    kinds += ["between_clusters"] * k3
    shifted += [-1] * (k2 + k3)

    x = np.vstack([inliers, o1, o2, o3])
    labels = np.concatenate([np.zeros(n_in, dtype=int), np.ones(n_out, dtype=int)])
    kind = ["inlier"] * n_in + kinds
    shifted = [-1] * n_in + shifted
    order = rng.permutation(N_ROWS)
    x = x[order]
    labels = labels[order]
    kind = [kind[i] for i in order]
    shifted = [shifted[i] for i in order]
    # Round to 10 significant digits: what is stored is exactly what sklearn is fitted on.
    x = np.vectorize(sig10)(x)
    return x, labels, kind, shifted


def write(path, obj):
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.1f} KiB)")


def main():
    OUT.mkdir(parents=True, exist_ok=True)

    ns = [0, 1, 2, 3, 4, 5, 10, 100, 256, 1000, 10**6]
    cn = _average_path_length(np.array(ns))
    write(
        OUT / "iforest_cn.json",
        {
            "source": f"sklearn.ensemble._iforest._average_path_length, scikit-learn {sklearn.__version__}",
            "n": ns,
            "c": [float(v) for v in cn],  # full precision (repr round-trips)
        },
    )

    x, labels, kind, shifted = make_data()
    scores = np.zeros(N_ROWS)
    per_seed_auc = []
    for seed in range(N_SEEDS):
        forest = IsolationForest(n_estimators=N_ESTIMATORS, random_state=seed).fit(x)
        s = forest.score_samples(x)
        per_seed_auc.append(roc_auc_score(labels, -s))
        scores += s
    scores /= N_SEEDS
    auc = roc_auc_score(labels, -scores)
    print(f"sklearn seed-averaged AUC {auc:.4f}; per seed {min(per_seed_auc):.4f}..{max(per_seed_auc):.4f}")
    for k in ["one_feature", "all_features", "between_clusters"]:
        mask = np.array([kk in ("inlier", k) for kk in kind])
        print(f"  AUC {k:>16}: {roc_auc_score(labels[mask], -scores[mask]):.4f}")
    # Sanity: the ranking of two independent seed averages (the noise floor of the parity test).
    a = np.mean([IsolationForest(n_estimators=N_ESTIMATORS, random_state=100 + s).fit(x).score_samples(x) for s in range(N_SEEDS)], axis=0)
    print(f"Spearman sklearn(0..9) vs sklearn(100..109): {scipy.stats.spearmanr(scores, a).statistic:.5f}")

    write(
        OUT / "iforest_parity.json",
        {
            "source": f"tools/golden_iforest.py, scikit-learn {sklearn.__version__}, numpy {np.__version__}",
            "n_rows": N_ROWS,
            "n_cols": N_COLS,
            "n_estimators": N_ESTIMATORS,
            "seeds": list(range(N_SEEDS)),
            "x": [[float(v) for v in row] for row in x],
            "labels": [int(v) for v in labels],
            "kind": kind,
            # For the "one_feature" outliers, the feature that was shifted (else -1).
            "shifted_feature": shifted,
            "sklearn_scores": [sig10(v) for v in scores],
            "sklearn_auc": sig10(auc),
        },
    )


if __name__ == "__main__":
    main()
