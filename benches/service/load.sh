#!/usr/bin/env bash
# Load benchmark of `breakdesk serve`: wrk on loopback against POST /realtime_anomaly (rules
# only, no LLM), records continuing the sample history's 100 accounts with 1% breaks.
#
#   benches/service/load.sh [DURATION_SECS] [CONNECTIONS] [WRK_THREADS]
#
# With BREAKDESK_BENCH_AUTH=1 the service has a [[service.users]] analyst and every request
# carries that user's bearer token (authentication, Host check and access log all on the path).
#
# Needs wrk (Debian: apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
conns=${2:-32}
threads=${3:-1}
bin=${BREAKDESK_BIN:-target/release/breakdesk}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
printf '[logging]\nfile = false\n' > "$work/config.toml"
if [ "${BREAKDESK_BENCH_AUTH:-0}" = 1 ]; then
  export BREAKDESK_BENCH_TOKEN="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  export BREAKDESK_TOKEN_BENCH="$BREAKDESK_BENCH_TOKEN"
  printf '[[service.users]]\nname = "bench"\nrole = "analyst"\ntoken_env = "BREAKDESK_TOKEN_BENCH"\n' >> "$work/config.toml"
  echo "authentication on: a [[service.users]] token on every request"
fi
python3 benches/service/records.py assets/samples/gl_ihub_history.csv "$work/records.lua"
"$bin" --config "$work/config.toml" --data-dir "$work/data" serve \
  --history assets/samples/gl_ihub_history.csv --bind 127.0.0.1:0 2> "$work/serve.log" &
pid=$!
addr=""
for _ in $(seq 1 600); do
  addr=$(grep -o 'listening on http://[0-9.:]*' "$work/serve.log" | sed 's|listening on http://||' || true)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "the service did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
echo "service on $addr; $(nproc) cores; wrk -t$threads -c$conns -d${secs}s"
# Warm-up (the first pass over the records opens their cases), then the measured run.
wrk -t"$threads" -c"$conns" -d5s -s "$work/records.lua" "http://$addr" > /dev/null
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$work/records.lua" "http://$addr" | tee "$work/wrk.out"
after=$(cpu)
requests=$(grep -o '^ *[0-9]* requests in' "$work/wrk.out" | grep -o '[0-9]*' | head -1)
tick=$(getconf CLK_TCK)
awk -v a="$after" -v b="$before" -v n="$requests" -v t="$tick" \
  'BEGIN { printf "service CPU: %.1f s for %d requests = %.0f us per request\n", (a-b)/t, n, (a-b)/t/n*1e6 }'
auth=()
[ -n "${BREAKDESK_BENCH_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $BREAKDESK_BENCH_TOKEN")
echo "cases opened or updated by the flagged records: $(curl -s "${auth[@]}" "http://$addr/cases?limit=0" | grep -o '"total":[0-9]*')"
curl -s "${auth[@]}" "http://$addr/health" | head -c 400
echo
