#!/usr/bin/env python3
"""Golden fixtures for RobustScaler and the contamination offset (numpy percentile, linear).

    python3 tools/golden_scaler.py   # writes tests/data/golden/scaler.json and offset.json
"""
import json, os
import numpy as np
from sklearn.preprocessing import RobustScaler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(3)
n = 37  # odd and not a multiple of 4, so the quartiles interpolate
X = np.column_stack([
    rng.normal(100, 15, n),                 # continuous
    rng.integers(0, 5, n).astype(float),    # many ties
    np.full(n, 7.0),                        # constant: zero range -> scale 1
    rng.lognormal(3, 1.5, n),               # skewed
    np.r_[np.zeros(n - 3), [1e6, -5e5, 3.0]],  # mostly zero, like a difference column
])
s = RobustScaler().fit(X)
json.dump({
    "X": X.tolist(),
    "center": s.center_.tolist(),
    "scale": s.scale_.tolist(),
    "transformed": s.transform(X).tolist(),
}, open(os.path.join(OUT, "scaler.json"), "w"), indent=0)

scores = -rng.uniform(0.3, 0.8, 101)
cases = []
for c in [0.01, 0.05, 0.1, 0.123, 0.25, 0.5]:
    cases.append({"contamination": c, "offset": float(np.percentile(scores, 100.0 * c))})
json.dump({"scores": scores.tolist(), "cases": cases},
          open(os.path.join(OUT, "offset.json"), "w"), indent=0)
print("wrote scaler.json and offset.json")
