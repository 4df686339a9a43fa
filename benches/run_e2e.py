#!/usr/bin/env python3
"""End-to-end benchmark of `breakdesk run` on 1,000,000 generated GL rows through the real
binary: ingest -> features -> model training -> scores -> clusters -> anomalies file, against
the seed pipeline (benches/seed_pipeline.py: the original documents' pipeline in pandas and
scikit-learn) on the same file, in the same invocation.

    cargo build --release && python3 benches/run_e2e.py [ROWS] [--reps N] [--baseline-reps N]

- ROWS (default 1,000,000): rows of the generated file, target/bench-data/e2e_gl_ihub_ROWS.csv
  (generated with the binary when missing, seed 7).
- BREAKDESK_BIN: the binary to run (default target/release/breakdesk).
- --reps N (default 3): breakdesk repetitions. Each uses a fresh data directory, so the model is
  trained inside the timed run (the worst case); a second run on the same data directory
  measures scoring with the saved model.
- --baseline-reps N (default 1, it is slow; 0 skips it): runs of the seed pipeline, first.
- --preset P: passed to `breakdesk run` (default: the configuration's preset).
- --memory-mb LIST: memory budgets passed to `breakdesk run --memory-mb`, comma-separated (e.g.
  `0,2048`: the whole file at once, then split by account under 2 GiB); each repetition runs
  every budget, alternating, so they share the machine's state. Default: the configuration's.

Every run is one child process, timed wall-clock from start to exit (interpreter start-up and
imports included for the baseline). Its peak memory is the maximum resident set size that
os.wait4() returns for that child alone (the largest of the child and the descendants it waited
for), so each run's peak is its own: RUSAGE_CHILDREN of this process would be the maximum over
every child so far. Prints a JSON line per run and a summary with the ratios baseline wall /
breakdesk wall.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SEED_PIPELINE = os.path.join(ROOT, "benches", "seed_pipeline.py")

ap = argparse.ArgumentParser(description="breakdesk run end to end, against the seed pipeline")
ap.add_argument("rows", nargs="?", type=int, default=1_000_000)
ap.add_argument("--reps", type=int, default=3, help="breakdesk repetitions (default 3)")
ap.add_argument("--baseline-reps", type=int, default=1,
                help="seed pipeline runs (default 1; 0 skips the baseline)")
ap.add_argument("--preset", help="feature preset passed to breakdesk run")
ap.add_argument("--memory-mb", help="budgets passed to breakdesk run --memory-mb, comma-separated")
args = ap.parse_args()
BUDGETS = [None] if not args.memory_mb else [int(b) for b in args.memory_mb.split(",")]
BIN = os.environ.get("BREAKDESK_BIN") or os.path.join(ROOT, "target", "release", "breakdesk")
ROWS = args.rows

if args.baseline_reps > 0:
    missing = [m for m in ("numpy", "pandas", "sklearn")
               if subprocess.run([sys.executable, "-c", f"import {m}"],
                                 capture_output=True).returncode != 0]
    if missing:
        print(f"the seed pipeline needs {', '.join(missing)}: install them with\n"
              "    pip install --break-system-packages pandas scikit-learn numpy\n"
              "or skip the baseline with --baseline-reps 0", file=sys.stderr)
        sys.exit(2)
if not os.access(BIN, os.X_OK):
    print(f"no breakdesk binary at {BIN}: build it (cargo build --release) or set BREAKDESK_BIN",
          file=sys.stderr)
    sys.exit(2)

DATA = os.path.join(ROOT, "target", "bench-data")
os.makedirs(DATA, exist_ok=True)
src = os.path.join(DATA, f"e2e_gl_ihub_{ROWS}.csv")
if not os.path.exists(src):
    subprocess.run([BIN, "generate", "--profile", "gl_ihub", "--rows", str(ROWS), "--seed", "7",
                    "--out", src, "--quiet"], check=True)


def timed(argv):
    """Runs one child; returns (wall seconds, its own peak RSS in MiB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        # wait4 reaps this child and gives its own rusage (Linux: ru_maxrss in KiB).
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        sys.stderr.write(stderr)
        raise SystemExit(f"{argv[0]} failed with exit code {p.returncode}")
    return wall, ru.ru_maxrss / 1024.0, stdout


def rows_in(path):
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def load():
    return round(os.getloadavg()[0], 2)


results = []
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "seed_anomalies.csv")
    for rep in range(args.baseline_reps):
        l0 = load()
        wall, peak, stdout = timed([sys.executable, SEED_PIPELINE, src, out])
        inner = json.loads(stdout.strip().splitlines()[-1])
        r = {"side": "baseline", "rep": rep, "phase": "seed pipeline", "rows": ROWS,
             "wall_s": round(wall, 3), "max_rss_mib": round(peak), "flagged": inner["flagged"],
             "k": inner["k"], "stages": inner["stages"], "load_before": l0}
        print(json.dumps(r), flush=True)
        results.append(r)

for rep in range(args.reps):
    for budget in BUDGETS:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "anomalies.csv")
            cmd = [BIN, "--data-dir", d, "--quiet", "run", src, "--out", out]
            if args.preset:
                cmd += ["--preset", args.preset]
            if budget is not None:
                cmd += ["--memory-mb", str(budget)]
            for phase in ["train+score", "saved model"]:
                l0 = load()
                wall, peak, _ = timed(cmd)
                r = {"side": "breakdesk", "rep": rep, "phase": phase, "rows": ROWS,
                     "memory_mb": budget, "wall_s": round(wall, 3), "max_rss_mib": round(peak),
                     "flagged": rows_in(out), "load_before": l0}
                print(json.dumps(r), flush=True)
                results.append(r)


def stats(phase, budget=None):
    rs = [r for r in results if r["phase"] == phase and r.get("memory_mb") == budget]
    ws = sorted(r["wall_s"] for r in rs)
    return ws[0], ws[len(ws) // 2], max(r["max_rss_mib"] for r in rs)


print(f"{ROWS:,} rows, {src}")
base = stats("seed pipeline") if args.baseline_reps > 0 else None
if base:
    print(f"{'seed pipeline':28} best {base[0]:7.3f} s  median {base[1]:7.3f} s  "
          f"peak RSS {base[2]:5.0f} MiB")
for budget in BUDGETS:
    for phase, label in [("train+score", "breakdesk, train + score"),
                         ("saved model", "breakdesk, saved model")]:
        if not args.reps:
            break
        best, median, rss = stats(phase, budget)
        ratio = f"  baseline / breakdesk {base[0] / best:5.1f}x (best), {base[1] / median:5.1f}x (median)" \
            if base else ""
        if budget is not None:
            label = f"{label} ({budget} MiB)" if budget else f"{label} (no bound)"
        print(f"{label:40} best {best:7.3f} s  median {median:7.3f} s  peak RSS {rss:5.0f} MiB{ratio}")
