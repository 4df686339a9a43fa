#!/usr/bin/env python3
"""The seed pipeline: the reference implementation of the original reconciliation documents, in
pandas and scikit-learn. benches/run_e2e.py runs it as the baseline of `breakdesk run`'s
end-to-end speed, on the same GL/IHub file.

    python3 benches/seed_pipeline.py INPUT.csv OUT.csv

Needs pandas, numpy and scikit-learn
(`pip install --break-system-packages pandas scikit-learn numpy`).

What it does, mirroring breakdesk's `seed` feature preset (src/features.rs) and its defaults
(config/default.toml):

1. Reads the GL/IHub CSV in chunks (`read_csv(chunksize=...)`); Company, Account, AU and Currency
   are read as text, so leading zeros are kept.
2. Features per account (key = Company, Account, AU, Currency), rows sorted by account, date and
   file order, with groupby diff / rolling:
   - the values: GL Balance, IHub Balance, Balance Difference (f_balance_lhs/rhs/diff);
   - f_days_since_last: days since the account's previous record;
   - f_change_*: change since the account's previous record of GL, IHub and the difference;
   - f_roll_mean_* and f_roll_std_* of GL and IHub: window 3 records, at least 1 observation,
     sample standard deviation (`[features] rolling_window = 3`, `rolling_min_periods = 1`);
   - f_weekday (Monday = 0) and f_month;
   - f_enc_*: label encodings of Company, AU, Currency and Match Status, fitted on the training
     rows (here the file itself); a value not seen in training encodes as -1.
   Missing values (an account's first record, a one-record std) become 0. These are the 17
   features of `--preset seed`. They equal breakdesk's on a generated file, except that pandas'
   rolling std is computed online: on a run of equal large balances it leaves a small residue
   (about 0.005 on 6.5 million) where breakdesk's two-pass std gives 0.
3. RobustScaler on the features, then IsolationForest(n_estimators=200, max_samples='auto',
   contamination='auto', n_jobs=-1, random_state=42), fitted on every row; score_samples gives the
   scores, and a row is flagged when its score is below the fitted offset_ (-0.5), which is what
   predict() does, without scoring every row a second time.
4. KMeans on the scaled features, as breakdesk's `[cluster]` defaults: k chosen among 2..8 by the
   mean simplified silhouette on 5,000 rows of the fit sample, then one k-means++ run
   (n_init=1, max_iter=100, random_state=42) fitted on at most 100,000 rows; every row is then
   assigned to its nearest centroid.
5. Writes the flagged rows, most anomalous first, with score, rank and cluster, to OUT.csv.

Prints one JSON line: wall seconds (from the start of the script, imports included), rows,
rows flagged, k and each stage's time.

What it leaves out, compared with `breakdesk run`: the rows check and data-quality findings, the
`breaks`/`account` features and each account's own normal (routine breaks, own z), the triage
(only breaks nothing explains are candidates), attributions, root-cause buckets and severity,
case records, the model store and the cluster summary. It is the documents' pipeline, not
breakdesk's: a lower bound on what the same work costs in pandas and scikit-learn.
"""
import time

T0 = time.perf_counter()

import json
import sys

try:
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import RobustScaler
except ImportError as e:
    print(
        f"seed_pipeline.py needs pandas, numpy and scikit-learn ({e}); install them with\n"
        "    pip install --break-system-packages pandas scikit-learn numpy",
        file=sys.stderr,
    )
    sys.exit(2)

CHUNK_ROWS = 200_000
KEYS = ["Company", "Account", "AU", "Currency"]
CATEGORICALS = [("company", "Company"), ("au", "AU"), ("currency", "Currency"),
                ("match_status", "Match Status")]
DATE, LHS, RHS, DIFF = "As of Date", "GL Balance", "IHub Balance", "Balance Difference"
TEXT = {c: str for c in ["Company", "Account", "AU", "Currency", "Primary Account",
                         "Secondary Account", "Match Status", "Comments"]}
WINDOW, MIN_PERIODS = 3, 1          # [features] rolling_window, rolling_min_periods
N_ESTIMATORS, SEED = 200, 42        # [detect.iforest] n_estimators, [detect] seed
K_MAX, FIT_SAMPLE, CHOOSE_SAMPLE, MAX_ITER = 8, 100_000, 5_000, 100  # [cluster]


def read(path):
    chunks = []
    for chunk in pd.read_csv(path, chunksize=CHUNK_ROWS, dtype=TEXT, keep_default_na=False,
                             na_values={LHS: [""], RHS: [""], DIFF: [""]}):
        chunk[DATE] = pd.to_datetime(chunk[DATE], format="%Y-%m-%d")
        chunks.append(chunk)
    return pd.concat(chunks, ignore_index=True)


def label_encode(train, values):
    """Sorted distinct training values -> 0, 1, 2, ...; an unseen value -> -1."""
    classes = pd.Index(np.sort(train.unique()))
    return classes.get_indexer(values).astype(np.float64)


def features(df):
    f = pd.DataFrame(index=df.index)
    # Accounts sorted by key, then date, then file order (the sort is stable).
    gid = df.groupby(KEYS, sort=False).ngroup()
    s = pd.DataFrame({"gid": gid, "date": df[DATE], LHS: df[LHS], RHS: df[RHS],
                      DIFF: df[DIFF]}).sort_values(["gid", "date"], kind="stable")
    g = s.groupby("gid", sort=False)
    days = g["date"].diff().dt.days
    changes = g[[LHS, RHS, DIFF]].diff()
    f["f_days_since_last"] = days
    for col, stem in [(LHS, "lhs"), (RHS, "rhs"), (DIFF, "diff")]:
        f[f"f_balance_{stem}"] = df[col]
    for col, stem in [(LHS, "lhs"), (RHS, "rhs"), (DIFF, "diff")]:
        f[f"f_change_balance_{stem}"] = changes[col]
    roll = g[[LHS, RHS]].rolling(WINDOW, min_periods=MIN_PERIODS)
    mean = roll.mean().reset_index(level=0, drop=True)
    std = roll.std().reset_index(level=0, drop=True)  # ddof = 1
    for col, stem in [(LHS, "lhs"), (RHS, "rhs")]:
        f[f"f_roll_mean_balance_{stem}"] = mean[col]
        f[f"f_roll_std_balance_{stem}"] = std[col]
    f["f_weekday"] = df[DATE].dt.day_of_week
    f["f_month"] = df[DATE].dt.month
    for slug, col in CATEGORICALS:
        # Fitted on the training rows: the file itself (a history file would go here).
        f[f"f_enc_{slug}"] = label_encode(df[col], df[col])
    return f.astype(np.float64).fillna(0.0)


def choose_k(x, rng):
    """k in 2..K_MAX with the best mean simplified silhouette ((b - a) / max(a, b), a the distance
    to the own centroid, b to the nearest other) on at most CHOOSE_SAMPLE rows; ties to the smaller k."""
    sub = x[np.sort(rng.choice(len(x), CHOOSE_SAMPLE, replace=False))] if len(x) > CHOOSE_SAMPLE else x
    best_k, best_s = 2, -np.inf
    for k in range(2, min(K_MAX, len(sub)) + 1):
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=MAX_ITER, tol=1e-4,
                    random_state=SEED).fit(sub)
        d = np.sort(km.transform(sub), axis=1)
        a, b = d[:, 0], d[:, 1]
        m = np.maximum(a, b)
        s = np.mean(np.where(m > 0, (b - a) / np.where(m > 0, m, 1.0), 0.0))
        if s > best_s + 1e-12:
            best_k, best_s = k, s
    return best_k


def main():
    if len(sys.argv) != 3:
        print("usage: python3 benches/seed_pipeline.py INPUT.csv OUT.csv", file=sys.stderr)
        sys.exit(2)
    src, out = sys.argv[1], sys.argv[2]
    stages = {"imports": time.perf_counter() - T0}

    def stage(name, t):
        now = time.perf_counter()
        stages[name] = round(now - t, 3)
        return now

    t = time.perf_counter()
    df = read(src)
    t = stage("read", t)
    feats = features(df)
    t = stage("features", t)
    x = RobustScaler().fit_transform(feats.to_numpy())
    t = stage("scale", t)
    forest = IsolationForest(n_estimators=N_ESTIMATORS, max_samples="auto", contamination="auto",
                             n_jobs=-1, random_state=SEED).fit(x)
    t = stage("iforest_fit", t)
    score = forest.score_samples(x)
    flagged = score < forest.offset_  # predict() == -1
    t = stage("iforest_score", t)
    rng = np.random.default_rng(SEED)
    fit_rows = x[np.sort(rng.choice(len(x), FIT_SAMPLE, replace=False))] if len(x) > FIT_SAMPLE else x
    k = choose_k(fit_rows, rng)
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=MAX_ITER, tol=1e-4,
                random_state=SEED).fit(fit_rows)
    cluster = km.predict(x)
    t = stage("kmeans", t)
    anomalies = df[flagged].copy()
    anomalies["score"] = score[flagged]
    anomalies["cluster"] = cluster[flagged]
    anomalies = anomalies.sort_values("score", kind="stable")
    anomalies["rank"] = np.arange(1, len(anomalies) + 1)
    anomalies[DATE] = anomalies[DATE].dt.strftime("%Y-%m-%d")
    anomalies.to_csv(out, index=False)
    stage("write", t)
    stages["imports"] = round(stages["imports"], 3)
    print(json.dumps({
        "pipeline": "seed (pandas + scikit-learn)",
        "rows": len(df),
        "features": feats.shape[1],
        "wall_s": round(time.perf_counter() - T0, 3),
        "flagged": int(flagged.sum()),
        "k": k,
        "stages": stages,
        "versions": {"pandas": pd.__version__, "sklearn": sklearn.__version__,
                     "numpy": np.__version__},
    }))


if __name__ == "__main__":
    main()
