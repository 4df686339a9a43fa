#!/usr/bin/env python3
"""Regenerates the samples in assets/samples/ with the breakdesk generator (standard library only).

    cargo build && python3 tools/make_samples.py target/debug/breakdesk

gl_ihub: one messy generated file split by date into a history file (all but the last 10
business days) and a current file (the last 10), with the labels of each remapped to its rows;
a copy of the current file under the other header spelling seen in the field
(Asofdate, ..., IHub balance, Balance difference; no Currency, no Comments); and a workbook.
The gl_ihub accounts whose breaks are routine for them (the generator's default share) are listed
in gl_ihub_routine.csv (group,kind).
trades: one messy generated file with its labels.
"""
import csv, datetime, io, os, re, subprocess, sys, tempfile

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/breakdesk"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "samples")
CURRENT_DAYS = 10


def parse_date(s):
    s = s.strip()
    if re.fullmatch(r"\d{5}", s):
        return datetime.date(1899, 12, 30) + datetime.timedelta(days=int(s))
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y"):
        try:
            return datetime.datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    return None  # placeholder or unreadable: kept with the history


def gen(profile, rows, seed, out, labels):
    subprocess.run([BIN, "generate", "--profile", profile, "--rows", str(rows), "--seed", str(seed),
                    "--messy", "--out", out, "--labels", labels, "--quiet"], check=True)


def read(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, list(r)


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    all_csv, all_labels = os.path.join(tmp, "gl.csv"), os.path.join(tmp, "gl_labels.csv")
    gen("gl_ihub", 6000, 11, all_csv, all_labels)
    header, rows = read(all_csv)
    _, labels = read(all_labels)
    by_row = {int(l[0]): l for l in labels}
    dates = sorted({d for d in (parse_date(r[0]) for r in rows) if d})
    cut = dates[-CURRENT_DAYS]
    parts = {"history": [], "current": []}
    part_labels = {"history": [], "current": []}
    for i, r in enumerate(rows):
        d = parse_date(r[0])
        part = "current" if d and d >= cut else "history"
        parts[part].append(r)
        if i + 2 in by_row:
            l = by_row[i + 2]
            part_labels[part].append([len(parts[part]) + 1, l[1], l[2]])
    for part in parts:
        write(os.path.join(OUT, f"gl_ihub_{part}.csv"), header, parts[part])
        write(os.path.join(OUT, f"gl_ihub_{part}_labels.csv"), ["row", "kind", "group"], part_labels[part])
    # The accounts whose breaks are routine for them (unlabelled): the same for both files.
    routine_header, routine = read(os.path.join(tmp, "gl_labels.routine.csv"))
    write(os.path.join(OUT, "gl_ihub_routine.csv"), routine_header, routine)

    # The other header spelling: Asofdate, Company, Account, AU, Match Status, GL Balance, IHub balance, Balance difference.
    short = ["Asofdate", "Company", "Account", "AU", "Match Status", "GL Balance", "IHub balance", "Balance difference"]
    src = ["As of Date", "Company", "Account", "AU", "Match Status", "GL Balance", "IHub Balance", "Balance Difference"]
    idx = [header.index(c) for c in src]
    write(os.path.join(OUT, "gl_ihub_current_short_header.csv"), short,
          [[r[i] for i in idx] for r in parts["current"]])

    subprocess.run([BIN, "generate", "--profile", "gl_ihub", "--rows", "1200", "--seed", "12", "--messy",
                    "--out", os.path.join(OUT, "gl_ihub_workbook.xlsx"), "--quiet"], check=True)
    gen("trades", 1500, 13, os.path.join(OUT, "trades.csv"), os.path.join(OUT, "trades_labels.csv"))

    for name in sorted(os.listdir(OUT)):
        print(f"{name:40} {os.path.getsize(os.path.join(OUT, name)):>9} bytes")


if __name__ == "__main__":
    main()
