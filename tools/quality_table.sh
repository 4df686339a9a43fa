#!/usr/bin/env bash
# Detection quality on generated, labelled data, for each feature preset and detector. The gl_ihub
# file has the generator's default share of routine accounts (30 %, listed beside the labels).
#   cargo build --release && tools/quality_table.sh [ROWS] [SEED]
# Prints one markdown table per combination (overall and per break kind) plus a summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/breakdesk}
ROWS=${1:-50000}
SEED=${2:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" generate --profile gl_ihub --rows "$ROWS" --seed "$SEED" --out "$TMP/gl.csv" --labels "$TMP/gl_labels.csv" --quiet
"$BIN" generate --profile trades --rows "$ROWS" --seed "$SEED" --out "$TMP/tr.csv" --labels "$TMP/tr_labels.csv" --quiet
echo "Data: breakdesk generate --rows $ROWS --seed $SEED (gl_ihub and trades); each file is its own history."
"$BIN" evaluate "$TMP/gl.csv" --labels "$TMP/gl_labels.csv" --quiet | grep -E '^(flags|triage):' || true
echo
summary="| profile | preset | detector | ROC-AUC | PR-AUC | precision@k | recall of flags | precision of flags |\n|---|---|---|---:|---:|---:|---:|---:|\n"
for profile in gl_ihub trades; do
  file=$TMP/gl.csv; labels=$TMP/gl_labels.csv
  [ "$profile" = trades ] && file=$TMP/tr.csv && labels=$TMP/tr_labels.csv
  for preset in seed breaks account; do
    for det in iforest lof; do
      echo "### $profile, preset $preset, detector $det"
      echo
      "$BIN" evaluate "$file" --labels "$labels" --preset "$preset" --detector "$det" --quiet | tee "$TMP/t.md"
      echo
      all=$(grep '^| all ' "$TMP/t.md" | awk -F'|' '{print $4"|"$5"|"$6"|"$7"|"$8}')
      summary+="| $profile | $preset | $det |$all|\n"
    done
  done
done
echo "### Summary (all injected breaks)"
echo
printf "%b" "$summary"
echo
echo "### Contamination (preset account, detector iforest): recall and precision of the flagged rows"
echo
echo "| profile | contamination | recall of flags | precision of flags |"
echo "|---|---|---:|---:|"
for profile in gl_ihub trades; do
  file=$TMP/gl.csv; labels=$TMP/gl_labels.csv
  [ "$profile" = trades ] && file=$TMP/tr.csv && labels=$TMP/tr_labels.csv
  for c in estimate mad auto 0.05; do
    row=$("$BIN" evaluate "$file" --labels "$labels" --preset account --detector iforest --contamination "$c" --quiet | grep '^| all ')
    echo "| $profile | $c |$(echo "$row" | awk -F'|' '{print $7"|"$8}')|"
  done
done
