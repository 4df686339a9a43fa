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
#   FUZZ_KEEP=N    afterwards, minimise what was found and add N of those inputs to the
#                  committed corpus (fuzz/corpus/<target>/found_*)
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
  if [ "${FUZZ_KEEP:-0}" -gt 0 ]; then
    # libFuzzer's merge minimises what was found (with the committed corpus) to the inputs that
    # each add coverage; FUZZ_KEEP of them (by name, i.e. by hash: an even spread, at most 16 KB
    # each) join the committed corpus as found_<hash>, which stays small enough to replay in
    # every `cargo test`.
    min="corpus-work/$t-min"
    rm -rf "$min" && mkdir -p "$min"
    "target/$(rustc -vV | sed -n 's/^host: //p')/release/$t" -merge=1 -rss_limit_mb="$RSS" \
      -timeout="$TIMEOUT" -max_len=262144 "$min" "corpus/$t" "$work" 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' || true
    for f in corpus/"$t"/*; do rm -f "$min/$(sha1sum "$f" | cut -c1-40)"; done
    find "$min" -type f -size -16k -printf '%f\n' | sort | head -n "$FUZZ_KEEP" |
      while read -r h; do cp "$min/$h" "corpus/$t/found_${h:0:16}"; done
  fi
done
