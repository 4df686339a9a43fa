#!/usr/bin/env python3
"""LOF fit time: breakdesk (Rust, rayon) against scikit-learn, on the same 100,000 × 12 CSV.

    python3 benches/lof_vs_sklearn.py            # from anywhere; paths are relative to this file

1. Makes target/bench-data/detect_100k_12.csv if it is missing (numpy seed 0: 99% standard
   Gaussian rows, 1% uniform outliers in [-8, 8]^12; header c0..c11; floats written with repr,
   so Rust parses exactly the values numpy holds).
2. Times scikit-learn `LocalOutlierFactor(n_neighbors=20).fit(X)` (defaults: algorithm="auto",
   which is a KD tree here, n_jobs=None, i.e. one thread), best of 3.
3. Runs `cargo bench --bench lof` from the crate root with BREAKDESK_BENCH_CSV set, and parses
   its one JSON line {"rows", "cols", "fit_s", "novelty_10k_s"} (fit is best of 3 there too).
4. Prints one JSON line: both fit times and the ratio sklearn / breakdesk (higher = breakdesk
   faster), the novelty-scoring time of the first 10,000 rows for both, and how far breakdesk's
   scores are from scikit-learn's (max absolute difference and count of bit-identical values;
   the Rust bench writes its scores when BREAKDESK_BENCH_SCORES_DIR is set).

Timings on a shared 2-core machine are noisy: compare ratios from one run, not across runs.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CSV = os.path.join(ROOT, "target", "bench-data", "detect_100k_12.csv")
ROWS, COLS, K = 100_000, 12, 20


def make_data(path):
    rng = np.random.default_rng(0)
    n_out = ROWS // 100
    X = rng.normal(0.0, 1.0, size=(ROWS, COLS))
    idx = rng.choice(ROWS, size=n_out, replace=False)
    X[idx] = rng.uniform(-8.0, 8.0, size=(n_out, COLS))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(",".join(f"c{j}" for j in range(COLS)) + "\n")
        for row in X:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    os.replace(tmp, path)


def best_of(n, fn):
    best = float("inf")
    out = None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    if not os.path.exists(CSV):
        print(f"generating {CSV}", file=sys.stderr)
        make_data(CSV)
    X = np.loadtxt(CSV, delimiter=",", skiprows=1)
    print(f"data: {X.shape[0]} rows x {X.shape[1]} cols", file=sys.stderr)

    sk_fit, lof = best_of(3, lambda: LocalOutlierFactor(n_neighbors=K).fit(X))
    print(f"sklearn fit (best of 3): {sk_fit:.3f} s  [_fit_method={lof._fit_method}]",
          file=sys.stderr)
    # Novelty scoring needs novelty=True, which changes nothing in fit: flip the flag on the
    # fitted model instead of fitting a fourth time.
    lof.novelty = True
    t = time.perf_counter()
    sk_scores = lof.score_samples(X[:10_000])
    sk_nov = time.perf_counter() - t

    scores_dir = os.path.dirname(CSV)
    env = dict(os.environ, BREAKDESK_BENCH_CSV=CSV, BREAKDESK_BENCH_SCORES_DIR=scores_dir)
    proc = subprocess.run(["cargo", "bench", "--bench", "lof"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(f"cargo bench failed with exit code {proc.returncode}")
    line = next((l for l in proc.stdout.splitlines() if l.strip().startswith("{")), None)
    if line is None:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit("no JSON line in the cargo bench output")
    rs = json.loads(line)
    rs_fit = np.loadtxt(os.path.join(scores_dir, "lof_fit_scores.txt"))
    rs_nov = np.loadtxt(os.path.join(scores_dir, "lof_novelty_scores.txt"))
    sk_fit_scores = lof.negative_outlier_factor_

    print(json.dumps({
        "rows": int(X.shape[0]),
        "cols": int(X.shape[1]),
        "n_neighbors": K,
        "sklearn_fit_s": round(sk_fit, 4),
        "breakdesk_fit_s": rs["fit_s"],
        "fit_ratio": round(sk_fit / rs["fit_s"], 2),
        "sklearn_novelty_10k_s": round(sk_nov, 4),
        "breakdesk_novelty_10k_s": rs["novelty_10k_s"],
        "novelty_ratio": round(sk_nov / rs["novelty_10k_s"], 2),
        "fit_scores_max_abs_diff": float(np.max(np.abs(rs_fit - sk_fit_scores))),
        "fit_scores_bit_identical": int(np.sum(rs_fit == sk_fit_scores)),
        "novelty_scores_max_abs_diff": float(np.max(np.abs(rs_nov - sk_scores))),
        "novelty_scores_bit_identical": int(np.sum(rs_nov == sk_scores)),
        "threads": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
