#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, cargo-fuzz + libFuzzer, nightly Rust) one after another.
#
#   tools/fuzz.sh [TARGET...]            every target when none is named
#
# Environment:
#   FUZZ_SECONDS   time per target (default 600)
#   FUZZ_RUNS      executions per target (default 1000000); a target stops at whichever comes first
#   FUZZ_RSS_MB    memory bound per target process (default 2048): libFuzzer stops with a
#                  reproducer when the process's peak RSS passes it, or one input allocates more
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_JOBS      parallel fuzzing processes per target (default 1)
#   FUZZ_MERGE=1   afterwards, merge what was found into the committed corpus (minimised:
#                  only inputs that add coverage are kept)
#
# Findings land in fuzz/artifacts/<target>/ (crash-*, oom-*, timeout-*); reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# and, once fixed, copy it into fuzz/corpus/<target>/ as regress_<what> (cargo test replays it).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(csv_ingest workbook_ingest rules_expression feedback_file service_record config_file)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi
SECONDS_PER=${FUZZ_SECONDS:-600}
RUNS=${FUZZ_RUNS:-1000000}
RSS=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
JOBS=${FUZZ_JOBS:-1}

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# No sanitizer: the code is safe Rust, and what is looked for is a panic, an abort, a hang or
# memory past the bound. Debug assertions (and with them overflow checks) stay on.
BUILD=(--sanitizer none --debug-assertions --release)
cargo +nightly fuzz build "${BUILD[@]}"

for t in "${TARGETS[@]}"; do
  echo "== $t: up to $RUNS runs or ${SECONDS_PER}s, rss limit ${RSS} MB"
  work="corpus-work/$t"
  mkdir -p "$work" "artifacts/$t"
  # New inputs go to the scratch directory; the committed corpus is read only.
  cargo +nightly fuzz run "${BUILD[@]}" --jobs "$JOBS" "$t" "$work" "corpus/$t" -- \
    -runs="$RUNS" -max_total_time="$SECONDS_PER" -rss_limit_mb="$RSS" -malloc_limit_mb="$RSS" \
    -timeout="$TIMEOUT" -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" 2>&1 | tee "artifacts/$t/last-run.log" | grep -E '^(#[0-9]+ +(DONE|pulse|INITED)|stat::|==[0-9]+==|SUMMARY|thread .* panicked)' || true
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    # libFuzzer's merge: adds to the corpus only the scratch inputs that reach new coverage.
    "target/$(rustc -vV | sed -n 's/^host: //p')/release/$t" -merge=1 -rss_limit_mb="$RSS" \
      -timeout="$TIMEOUT" -max_len=262144 "corpus/$t" "$work" 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' || true
  fi
done
