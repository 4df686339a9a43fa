#!/usr/bin/env python3
"""`breakdesk run` on a store that already holds outstanding cases, against a fresh store.

    cargo build --release && python3 benches/store_days.py [ROWS] [DAYS]

BREAKDESK_BIN=PATH runs another binary (default target/release/breakdesk).

DAYS generated files of ROWS GL rows (seeds 7, 8, …; the same dates, other amounts and breaks)
are run one after another into one data directory, as a team running a file a day does. Each
day's file is also run into a fresh data directory just before, so that the difference is what
the cases already in the store cost. For each day, prints the wall time and the `cases` stage of
`--timings` on both stores, and the outstanding cases the populated store holds after the run.
"""
import os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("BREAKDESK_BIN") or os.path.join(ROOT, "target", "release", "breakdesk")
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
DAYS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
DATA = os.path.join(ROOT, "target", "bench-data")
os.makedirs(DATA, exist_ok=True)


def day_file(seed):
    path = os.path.join(DATA, f"e2e_gl_ihub_{ROWS}.csv" if seed == 7 else f"day_gl_ihub_{ROWS}_{seed}.csv")
    if not os.path.exists(path):
        subprocess.run([BIN, "generate", "--profile", "gl_ihub", "--rows", str(ROWS), "--seed",
                        str(seed), "--out", path, "--quiet"], check=True)
    return path


def run(data, path, out):
    t = time.perf_counter()
    p = subprocess.run([BIN, "--data-dir", data, "run", path, "--out", out, "--timings"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed on {path}: {p.stderr[-2000:]}")
    cases = re.search(r"\bcases ([0-9.]+) s", p.stderr)
    outstanding = re.search(r"; (\d+) outstanding", p.stderr)
    return wall, float(cases.group(1)) if cases else float("nan"), int(outstanding.group(1)) if outstanding else -1


files = [day_file(7 + d) for d in range(DAYS)]
with tempfile.TemporaryDirectory(prefix="bd-store-days-") as tmp:
    kept = os.path.join(tmp, "kept")
    out = os.path.join(tmp, "out.csv")
    print(f"{ROWS:,} rows a day, {DAYS} days")
    print("day  fresh store: wall  cases   populated store: wall  cases   outstanding after")
    for d, path in enumerate(files, 1):
        fresh = os.path.join(tmp, f"fresh-{d}")
        fw, fc, _ = run(fresh, path, out)
        shutil.rmtree(fresh)
        kw, kc, n = run(kept, path, out)
        print(f"{d:>3}  {fw:>16.2f} s {fc:>6.3f} s  {kw:>20.2f} s {kc:>6.3f} s  {n:>17,}")
