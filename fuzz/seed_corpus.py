#!/usr/bin/env python3
"""Writes the starting corpus of each fuzz target into fuzz/corpus/<target>/ from the repository's
samples, fixtures and config. Run from anywhere; existing files of the same name are replaced,
other corpus files (minimised finds, regression inputs) are left alone.

CSV and workbook inputs start with one option byte (see src/fuzzing.rs): 0x00 reads with the
defaults (UTF-8, delimiter and decimal separator detected)."""
import csv
import io
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def head(path, lines):
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(lines))


samples = ROOT / "assets" / "samples"
fixtures = ROOT / "tests" / "fixtures" / "ingest"

# CSV ingest: the head of each sample (header + a few rows) and every CSV fixture.
for name, lines in [("gl_ihub_current.csv", 25), ("gl_ihub_current_short_header.csv", 12),
                    ("gl_ihub_routine.csv", 30), ("trades.csv", 12)]:
    put("csv_ingest", "seed_" + name, b"\x00" + head(samples / name, lines))
for f in sorted(fixtures.iterdir()):
    if f.suffix in (".csv", ".txt"):
        sel = {"utf16_nobom.csv": b"\x03"}.get(f.name, b"\x00")
        put("csv_ingest", "seed_" + f.name, sel + f.read_bytes())
put("csv_ingest", "seed_semicolon_comma.csv",
    b"\x48" + head(fixtures / "eu_semicolon.csv", 10))

# Workbook ingest: the sample workbook and the undeclared-size fixture, read as .xlsx.
put("workbook_ingest", "seed_gl_ihub_workbook.xlsx", b"\x00" + (samples / "gl_ihub_workbook.xlsx").read_bytes())
put("workbook_ingest", "seed_bomb_undeclared.xlsx", b"\x00" + (fixtures / "bomb_undeclared.xlsx").read_bytes())

# Rules' expressions: every `when` of config/rules.toml, and docs/tui.md's example.
rules = (ROOT / "config" / "rules.toml").read_text()
for i, m in enumerate(re.finditer(r'^when = "(.*)"$', rules, re.M)):
    put("rules_expression", f"seed_rule_{i:02}", m.group(1))
put("rules_expression", "seed_example", 'abs(difference) > 1000 and status = "pending"')
put("rules_expression", "seed_functions",
    "min(1, 2.5e3, -amount) + max(round(tolerance), sign(-0.0)) / log10(abs(difference)) >= pow10(1000)"
    " or contains(comment, 'fee', \"FX\") and starts_with(desk, 'RA') && !missing(status) || ends_with(comment, '\\'')")

# Feedback files (cases: fuzzing::FEEDBACK_CASES): by case id, by ticket, by profile key columns, by key column.
put("feedback_file", "seed_case_ids.csv",
    "case_id,label,reason\nC-44b58c5975da,accept,\nC-43848cfaa682,reject,known fee\nBRK-20240501-000001,reject,x\n")
put("feedback_file", "seed_gl_keys.csv",
    "Company,Account,AU,Currency,As of Date,feedback,reason\n00000,201000,1750,USD,2024-05-01,0,known fee\n"
    "00000,201000,1750,EUR,2024-05-02,1,\n")
put("feedback_file", "seed_key_column.csv",
    "profile,key,date,verdict,comment\ngl_ihub,00000|201000|1750|USD,2024-05-01,true,\n"
    "trades,RATES|T-1001,2024-05-01,false,\"booked twice, \"\"reversed\"\"\"\n")

# Service records: a gl_ihub and a trades record, as a client posts them.
with open(samples / "gl_ihub_current.csv", newline="") as f:
    rows = list(csv.DictReader(f))
put("service_record", "seed_gl_ihub.json", json.dumps(rows[0]))
put("service_record", "seed_gl_ihub_break.json", json.dumps(next(r for r in rows if r["Match Status"] == "Break")))
num = dict(rows[1])
num["GL Balance"] = -65246.29
num["IHub Balance"] = -65000
num["Balance Difference"] = -246.29
put("service_record", "seed_gl_ihub_numbers.json", json.dumps(num))
with open(samples / "trades.csv", newline="") as f:
    trows = list(csv.DictReader(f))
put("service_record", "seed_trades.json", json.dumps(trows[0]))
put("service_record", "seed_trades_price.json", json.dumps(next(r for r in trows if r["MatchStatus"] == "Price_Break")))

# Config files: the embedded defaults, and small user files.
put("config_file", "seed_default.toml", (ROOT / "config" / "default.toml").read_text())
put("config_file", "seed_user.toml",
    '[general]\nrole = "supervisor"\n\n[ingest]\ndelimiter = ";"\ndecimal = ","\nday_first = true\n\n'
    '[detect]\ndetector = "lof"\ncontamination = "0.05"\n\n[roles]\nsupervisors = ["sam"]\nanalysts = ["alice"]\n')
put("config_file", "seed_service.toml",
    '[service]\nmax_record_fields = 64\n\n[[service.users]]\nname = "alice"\nrole = "analyst"\ntoken_env = "BD_TOKEN_ALICE"\n')


# Small hand-made workbooks, stored uncompressed so that mutations reach the XML.
def xlsx(rows, sheet="Recon", after=""):
    import zipfile
    def cell(r, c, v):
        ref = chr(ord("A") + c) + str(r + 1)
        if isinstance(v, (int, float)):
            return f'<c r="{ref}"><v>{v}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{v}</t></is></c>'
    body = "".join(
        f'<row r="{r + 1}">' + "".join(cell(r, c, v) for c, v in enumerate(row) if v != "") + "</row>"
        for r, row in enumerate(rows))
    last = chr(ord("A") + max(len(r) for r in rows) - 1) + str(len(rows))
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
        f'<sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="A1:{last}"/><sheetData>{body}</sheetData>{after}</worksheet>',
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, text in files.items():
            z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


gl_header = ["As of Date", "Company", "Account", "AU", "Currency", "GL Balance", "IHub Balance",
             "Balance Difference", "Match Status", "Comments"]
gl_rows = [gl_header,
           [45362, "00000", "110200", "7052", "USD", 4335654.08, 4335654.08, 0, "Match", ""],
           ["2024-03-12", "00000", "120100", "0509", "CAD", -65246.29, -65000, -246.29, "Break", "timing"],
           [45363, "00000", "120100", "0509", "CAD", -65246.29, -65246.29, 0, "Match", ""],
           [45364, "00000", "120100", "0509", "CAD", 1e308, -1e308, "", "Break", "rounding"]]
put("workbook_ingest", "seed_small_gl.xlsx", b"\x00" + xlsx(gl_rows))
put("workbook_ingest", "seed_title_row.xlsx", b"\x00" + xlsx([["Recon report"], *gl_rows], sheet="My sheet"))
put("workbook_ingest", "seed_merged_header.xlsx",
    b"\x00" + xlsx(gl_rows, after='<mergeCells count="1"><mergeCell ref="F1:G1"/></mergeCells>'))
