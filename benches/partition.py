#!/usr/bin/env python3
"""Partitioned run against one run, on 1,000,000 generated GL rows through the real binary.

    cargo build --release && python3 benches/partition.py [ROWS] [REPS]

BREAKDESK_BIN=PATH runs another binary (default target/release/breakdesk), to compare two builds
in one window.

A model is trained once and exported (not timed). Then, with that model file, each repetition
times, wall-clock:

- single: `run FILE --model M` (one process, fresh data directory: it records the cases);
- 4 at once: `run FILE --model M --partition I/4` for I = 0..3 started together, then
  `merge --record` (the same cases recorded by the one writer);
- 2 + 2: the same partitions two at a time (a machine of 2 cores), then `merge --record`;
- and `merge` alone without `--record`, for what the merge itself costs.

The merged output is checked against the single run's (same rows and columns, case columns
aside). Prints a JSON line per measurement (wall time, and the CPU time of the processes:
user + system) and a summary with the ratios to the single run. The machine's load average
is printed with each repetition: on a shared machine, compare repetitions run while it is idle.
"""
import csv, json, os, resource, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("BREAKDESK_BIN") or os.path.join(ROOT, "target", "release", "breakdesk")
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
N = 4
DATA = os.path.join(ROOT, "target", "bench-data")
os.makedirs(DATA, exist_ok=True)
src = os.path.join(DATA, f"e2e_gl_ihub_{ROWS}.csv")
if not os.path.exists(src):
    subprocess.run([BIN, "generate", "--profile", "gl_ihub", "--rows", str(ROWS), "--seed", "7",
                    "--out", src, "--quiet"], check=True)


def bd(data, *args):
    return [BIN, "--data-dir", data, "--quiet", *args]


CPU = [0.0]


def timed_all(cmds):
    """Starts the commands together; the wall time until the last one ends. Their CPU time is
    added to CPU[0]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    procs = [subprocess.Popen(c) for c in cmds]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"failed: {p.args}")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[0] += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def without_cases(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, h in enumerate(rows[0]) if h not in ("case_id", "ticket", "case_status")]
    return [[r[i] for i in keep] for r in rows]


work = tempfile.mkdtemp(prefix="bd-partition-bench-")
try:
    model = os.path.join(work, "model.json")
    subprocess.run(bd(os.path.join(work, "train"), "train", src, "--export", model), check=True)
    results = []

    def record(rep, name, wall, **extra):
        r = {"rep": rep, "measure": name, "rows": ROWS, "wall_s": round(wall, 3),
             "cpu_s": round(CPU[0], 2), **extra}
        CPU[0] = 0.0
        print(json.dumps(r), flush=True)
        results.append(r)

    for rep in range(REPS):
        d = os.path.join(work, f"rep{rep}")
        os.makedirs(d)
        print(json.dumps({"rep": rep, "load_average": os.getloadavg()}), flush=True)
        CPU[0] = 0.0
        single = os.path.join(d, "single.csv")
        wall = timed_all([bd(os.path.join(d, "single-store"), "run", src, "--model", model,
                             "--out", single)])
        record(rep, "single", wall)

        for schedule in ["4 at once", "2 + 2"]:
            tag = schedule.replace(" ", "").replace("+", "p")
            parts = [os.path.join(d, f"{tag}-part-{i}.csv") for i in range(N)]
            cmds = [bd(os.path.join(d, f"{tag}-worker{i}"), "run", src, "--model", model,
                       "--partition", f"{i}/{N}", "--out", parts[i]) for i in range(N)]
            if schedule == "4 at once":
                workers = timed_all(cmds)
            else:
                workers = timed_all(cmds[:2]) + timed_all(cmds[2:])
            merged = os.path.join(d, f"{tag}-merged.csv")
            merge = timed_all([bd(os.path.join(d, f"{tag}-merge-store"), "merge", *parts,
                                  "--out", merged, "--record")])
            record(rep, schedule, workers + merge, workers_s=round(workers, 3),
                   merge_record_s=round(merge, 3))
            if schedule == "4 at once":
                plain = os.path.join(d, "plain-merged.csv")
                m = timed_all([bd(os.path.join(d, "plain-merge-store"), "merge", *parts,
                                  "--out", plain)])
                record(rep, "merge without --record", m)
                if rep == 0 and without_cases(plain) != without_cases(single):
                    sys.exit("the merged output differs from the single run's")
        shutil.rmtree(d)

    names = ["single", "4 at once", "2 + 2", "merge without --record"]
    med = {m: statistics.median(r["wall_s"] for r in results if r["measure"] == m)
           for m in names}
    cpu = {m: statistics.median(r["cpu_s"] for r in results if r["measure"] == m)
           for m in names}
    print(f"single     median {med['single']:.2f} s wall, {cpu['single']:.1f} s CPU")
    for m in ["4 at once", "2 + 2"]:
        w = statistics.median(r["workers_s"] for r in results if r["measure"] == m)
        mr = statistics.median(r["merge_record_s"] for r in results if r["measure"] == m)
        ratios = sorted(r["wall_s"] / s["wall_s"] for r, s in zip(
            [r for r in results if r["measure"] == m],
            [r for r in results if r["measure"] == "single"]))
        print(f"{m:10} median {med[m]:.2f} s wall (workers {w:.2f} s + merge --record {mr:.2f} s)"
              f" = {med[m] / med['single']:.2f}x the single run (per repetition:"
              f" {', '.join(f'{x:.2f}' for x in ratios)}); {cpu[m]:.1f} s CPU")
    print(f"merge without --record median {med['merge without --record']:.2f} s wall")
finally:
    shutil.rmtree(work, ignore_errors=True)
