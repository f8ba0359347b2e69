#!/usr/bin/env bash
# Churn soak: sessions connect, join rooms, trade messages and leave, over and over, for a
# bounded time; the server's resident memory at the end must come back to within 5 % of
# where it was after a warm-up round (no leak under room churn, the LiveKit complaint).
#
#   perf/churn_soak.sh                      # 5 minutes, results in perf/results/churn-<date>.md
#   SOAK_SECONDS=60 perf/churn_soak.sh      # a shorter run
#
# Environment: SOAK_SECONDS (default 300), CONNECTIONS per round (default 2000), SHARDS
# (default 2), DRIVER (auto), SB_BIN (default: cargo build --release, target/release).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
soak="${SOAK_SECONDS:-300}"
conns="${CONNECTIONS:-2000}"
shards="${SHARDS:-2}"
driver="${DRIVER:-auto}"
date="$(date +%Y-%m-%d)"
md="$repo/perf/results/churn-$date.md"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -z "${SB_BIN:-}" ]]; then
  (cd "$repo" && nice -n 10 cargo build --release >&2)
  SB_BIN="$repo/target/release/switchboard"
fi

tmp="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Every limit that would refuse a load generator on one address is lifted; nothing else.
SWITCHBOARD_SIGNAL_MESSAGES_PER_SECOND=0 SWITCHBOARD_SIGNAL_SESSIONS_PER_IP_MAX=0 \
SWITCHBOARD_ADMIN_ENABLED=false SWITCHBOARD_STUN_ENABLED=false \
  "$SB_BIN" serve --listen 127.0.0.1:0 --shards "$shards" --driver "$driver" --log-format json \
  2>"$tmp/server.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q '"switchboard started"' "$tmp/server.log" 2>/dev/null && break
  sleep 0.1
done
addr="$(grep '"switchboard started"' "$tmp/server.log" | sed -E 's/.*"addr":"([^"]+)".*/\1/')"
[[ -n "$addr" ]] || { cat "$tmp/server.log"; exit 1; }
target="ws://$addr/v1/signal"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

round() {
  # One round: CONNECTIONS clients in rooms of 4 broadcast for a few seconds, then all leave.
  "$SB_BIN" bench --target "$target" --scenario rooms --room-size 4 \
    --connections "$conns" --rate 2000 --duration 3 --warmup 1 --quiet \
    --json "$tmp/round.json" >/dev/null
}

# Sessions outlive their sockets by the resume grace (15 s by default): memory is read once
# those have ended.
settle() { sleep 17; }
# Warm-up: 45 s of the same churn. Sessions of a round stay (detached) for the resume grace
# while the next rounds run, so the session tables reach their steady-state size only after
# about one grace period of churn; memory is compared from there on, after the same settle.
log "server $pid on $addr; warm-up rounds"
warm_end=$(( $(date +%s) + 45 ))
while (( $(date +%s) < warm_end )); do
  round
done
settle
rss_start="$(rss)"
start="$(date +%s)"
rounds=0
series=""
while (( $(date +%s) - start < soak )); do
  round
  rounds=$((rounds + 1))
  # RSS right after each round (sessions still in their grace period), to see a plateau.
  series="$series $(rss)"
done
settle
rss_end="$(rss)"
sessions_json="$(cat "$tmp/round.json")"
delta_pct="$(awk -v a="$rss_start" -v b="$rss_end" 'BEGIN { printf "%.2f", (b - a) * 100 / a }')"
verdict="$(awk -v d="$delta_pct" 'BEGIN { print (d <= 5 ? "within 5 %" : "OVER 5 %") }')"
{
  echo "# Churn soak, $date"
  echo
  echo "\`SOAK_SECONDS=$soak CONNECTIONS=$conns SHARDS=$shards DRIVER=$driver perf/churn_soak.sh\`"
  echo
  echo "| rounds | sessions opened and closed | RSS after 45 s warm-up and settle KiB | RSS at end, after settle KiB | change |"
  echo "|---|---|---|---|---|"
  echo "| $rounds | $((rounds * conns)) | $rss_start | $rss_end | $delta_pct % ($verdict) |"
  echo
  echo "RSS (KiB) right after each round: $series"
  echo
  echo "Each round: $conns clients join rooms of 4, broadcast at 2000 msgs/s for 3 s, then"
  echo "disconnect (their sessions end; resume grace applies per the default config)."
  echo
  echo "Last round's bench JSON:"
  echo
  echo '```json'
  echo "$sessions_json"
  echo '```'
} >"$md"
log "wrote $md: RSS $rss_start -> $rss_end KiB ($delta_pct %, $verdict)"
[[ "$verdict" == "within 5 %" ]]
