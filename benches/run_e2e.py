#!/usr/bin/env python3
"""End-to-end benchmark of `breakdesk run` on 1,000,000 generated GL rows through the real
binary: ingest -> features -> model training -> scores -> clusters -> anomalies file.

    cargo build --release && python3 benches/run_e2e.py [ROWS]

Each run uses a fresh data directory, so the model is trained inside the timed run (the worst
case); a second run per data dir measures scoring with the saved model. Peak memory is the
child's maximum resident set size (getrusage). Prints a JSON line per run and a summary.
"""
import json, os, resource, subprocess, sys, tempfile, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, "target", "release", "breakdesk")
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
DATA = os.path.join(ROOT, "target", "bench-data")
os.makedirs(DATA, exist_ok=True)
src = os.path.join(DATA, f"e2e_gl_ihub_{ROWS}.csv")
if not os.path.exists(src):
    subprocess.run([BIN, "generate", "--profile", "gl_ihub", "--rows", str(ROWS), "--seed", "7",
                    "--out", src, "--quiet"], check=True)


def timed(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(args, check=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far; runs only grow it.
    return wall, peak / 1024.0, before


results = []
for rep in range(3):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "anomalies.csv")
        base = [BIN, "--data-dir", d, "--quiet", "run", src, "--out", out]
        for phase in ["train+score", "saved model"]:
            wall, peak, _ = timed(base)
            flagged = sum(1 for _ in open(out)) - 1
            r = {"rep": rep, "phase": phase, "rows": ROWS, "wall_s": round(wall, 3),
                 "max_rss_mib_so_far": round(peak), "flagged": flagged}
            print(json.dumps(r))
            results.append(r)
for phase in ["train+score", "saved model"]:
    ws = sorted(r["wall_s"] for r in results if r["phase"] == phase)
    print(f"{phase:12} best {ws[0]:.3f} s  median {ws[len(ws) // 2]:.3f} s")
print(f"peak resident memory of any run: {max(r['max_rss_mib_so_far'] for r in results)} MiB")
