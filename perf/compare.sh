#!/usr/bin/env bash
# Side-by-side comparison of switchboard (epoll and io_uring drivers) with other WebRTC
# signaling servers, driven by `switchboard bench` with the same scenario and payload, and
# with two reference WebSocket echo servers (perf/echo: raw io_uring, fastwebsockets) that
# show the floor under them all.
#
#   perf/compare.sh                 # everything, results in perf/results/<date>.md
#   ROUNDS=1 DURATION=5 perf/compare.sh
#
# Each server runs alone on CPU 1 (taskset -c 1), the bench on CPU 0; every (server,
# scenario) run gets a freshly started server; rounds alternate between servers so that
# noise from the machine spreads over all of them. See perf/README.md for how to read the
# output.
#
# Environment:
#   PEERS_DIR    where the peers are installed (default $HOME/.cache/switchboard-peers)
#   INSTALL_GST  1 to build gst-webrtc-signalling-server if missing (~5 min of compiling)
#   SERVERS      which to run (default: sb-epoll sb-uring matchbox peerjs gst echo-uring
#                echo-fastws, those present)
#   ROUNDS       rounds of alternation (default 2)
#   PAIRS        pairs of clients (default 100)
#   PAYLOAD      payload bytes (default 256)
#   DURATION     measured seconds per run (default 8); WARMUP (default 2)
#   RATES        offered msgs/s of the equal-load runs, a list (default "5000 50000": one
#                near the loopback floor, one where a peer at ~14 µs/msg is ~70 % busy)
#   IDLE         idle sessions for the memory run (default 10000; 0 skips)
#   SB_BIN       switchboard binary (default: cargo build --release, target/release)
#   ECHO_BIN     reference echo servers (default: cargo build --release of perf/echo)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS_DIR:-$HOME/.cache/switchboard-peers}"
rounds="${ROUNDS:-2}"
pairs="${PAIRS:-100}"
payload="${PAYLOAD:-256}"
duration="${DURATION:-8}"
warmup="${WARMUP:-2}"
rates="${RATES:-${RATE:-5000 50000}}"
idle="${IDLE:-10000}"
date="$(date +%Y-%m-%d)"
out="$repo/perf/results/$date"
md="$repo/perf/results/$date.md"
mkdir -p "$out" "$peers"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

requested=" ${SERVERS:-sb-epoll sb-uring matchbox peerjs gst echo-uring echo-fastws} "
wants() { [[ "$requested" == *" $1 "* ]]; }

# ----- peers -------------------------------------------------------------------------------
# Only the peers that SERVERS asks for are installed (a cargo install takes minutes).
if wants matchbox && [[ ! -x "$peers/bin/matchbox_server" ]]; then
  log "installing matchbox_server 0.15.0 into $peers"
  nice -n 10 cargo install matchbox_server --version 0.15.0 --locked --root "$peers" \
    || log "matchbox_server install failed; skipping it"
fi
if wants peerjs && [[ ! -e "$peers/node_modules/peer/dist/bin/peerjs.js" ]] \
  && command -v npm >/dev/null; then
  log "installing npm peer@1.0.2 into $peers"
  (cd "$peers" && npm install --no-audit --no-fund peer@1.0.2 >/dev/null) \
    || log "peer install failed; skipping it"
fi
if wants gst && [[ ! -x "$peers/bin/gst-webrtc-signalling-server" && "${INSTALL_GST:-0}" == 1 ]]; then
  log "installing gst-plugin-webrtc-signalling 0.15.4 into $peers (slow)"
  nice -n 10 cargo install gst-plugin-webrtc-signalling --version 0.15.4 --locked \
    --root "$peers" || log "gst signalling server install failed; skipping it"
fi

if [[ -z "${SB_BIN:-}" ]]; then
  (cd "$repo" && nice -n 10 cargo build --release >&2)
  SB_BIN="$repo/target/release/switchboard"
fi
if [[ -z "${ECHO_BIN:-}" ]] && { wants echo-uring || wants echo-fastws; }; then
  (cd "$repo" && nice -n 10 cargo build --release --manifest-path perf/echo/Cargo.toml >&2) \
    || log "perf/echo build failed; skipping the echo references"
  ECHO_BIN="$repo/perf/echo/target/release/echo-perf"
fi

# ----- servers -----------------------------------------------------------------------------
present=()
for s in $requested; do
  case "$s" in
    sb-*) present+=("$s") ;;
    echo-uring|echo-fastws) [[ -x "${ECHO_BIN:-}" ]] && present+=("$s") ;;
    matchbox) [[ -x "$peers/bin/matchbox_server" ]] && present+=("$s") ;;
    peerjs) [[ -e "$peers/node_modules/peer/dist/bin/peerjs.js" ]] && present+=("$s") ;;
    gst) [[ -x "$peers/bin/gst-webrtc-signalling-server" ]] && present+=("$s") ;;
  esac
done
log "servers: ${present[*]}"

# Lift switchboard's limits that would refuse a load generator on one address (messages per
# second per session, sessions per address), and leave out the STUN and admin listeners,
# which the other servers do not have either.
sb_env=(SWITCHBOARD_SIGNAL_MESSAGES_PER_SECOND=0 SWITCHBOARD_SIGNAL_SESSIONS_PER_IP_MAX=0
  SWITCHBOARD_STUN_ENABLED=false SWITCHBOARD_ADMIN_ENABLED=false)

port=0
pid=0
start_server() { # name -> sets port, pid, target, dialect
  port=$((20000 + RANDOM % 20000))
  local logf="$out/$1.log"
  case "$1" in
    sb-epoll|sb-uring)
      env SWITCHBOARD_SERVER_PIN_THREADS=false "${sb_env[@]}" \
        SWITCHBOARD_LOG=warn taskset -c 1 "$SB_BIN" serve --listen "127.0.0.1:$port" \
        --shards 1 --driver "${1#sb-}" >>"$logf" 2>&1 &
      pid=$!
      target="ws://127.0.0.1:$port/v1/signal"; dialect=switchboard ;;
    matchbox)
      HOST="127.0.0.1:$port" RUST_LOG=warn taskset -c 1 "$peers/bin/matchbox_server" \
        >>"$logf" 2>&1 &
      pid=$!
      target="ws://127.0.0.1:$port/"; dialect=matchbox ;;
    peerjs)
      taskset -c 1 node "$peers/node_modules/peer/dist/bin/peerjs.js" --host 127.0.0.1 \
        --port "$port" --path /myapp --key peerjs -c 1000000 >>"$logf" 2>&1 &
      pid=$!
      target="ws://127.0.0.1:$port/myapp/peerjs"; dialect=peerjs ;;
    gst)
      RUST_LOG=warn taskset -c 1 "$peers/bin/gst-webrtc-signalling-server" --host 127.0.0.1 \
        --port "$port" >>"$logf" 2>&1 &
      pid=$!
      target="ws://127.0.0.1:$port/"; dialect=gst ;;
    echo-uring|echo-fastws)
      # References, not peers: each message comes back to its sender (--dialect echo), still
      # one receive and one send per message, so server µs/msg compares with a relay's.
      taskset -c 1 "$ECHO_BIN" "${1#echo-}" --listen "127.0.0.1:$port" >>"$logf" 2>&1 &
      pid=$!
      target="ws://127.0.0.1:$port/"; dialect=echo ;;
  esac
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$1 did not start listening on $port"
  stop_server
  return 1
}
stop_server() {
  if [[ "$pid" -gt 0 ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=0
  fi
}
trap 'stop_server' EXIT

bench() { # server run-name extra-args...
  local s="$1" name="$2"
  shift 2
  start_server "$s" || return 0
  log "$s: $name"
  taskset -c 0 "$SB_BIN" bench --quiet --target "$target" --dialect "$dialect" \
    --server-pid "$pid" --payload-bytes "$payload" \
    --json "$out/$s.$name.r$round.json" --hgrm "$out/$s.$name.r$round.hgrm" "$@" \
    || log "$s $name failed"
  stop_server
}

for round in $(seq 1 "$rounds"); do
  for s in "${present[@]}"; do
    conns=$((pairs * 2))
    bench "$s" depth1 --connections "$conns" --depth 1 --duration "$duration" --warmup "$warmup"
    bench "$s" depth4 --connections "$conns" --depth 4 --duration "$duration" --warmup "$warmup"
    for rate in $rates; do
      bench "$s" "rate$rate" --connections "$conns" --rate "$rate" --duration "$duration" \
        --warmup "$warmup"
    done
    if [[ "$idle" -gt 0 && "$round" == 1 ]]; then
      bench "$s" idle --scenario idle --connections "$idle" --duration 5
    fi
  done
done

# ----- plots and table ---------------------------------------------------------------------
for name in depth1 $(printf 'rate%s ' $rates); do
  series=()
  for s in "${present[@]}"; do
    f="$out/$s.$name.r1.hgrm"
    [[ -s "$f" ]] && series+=(--plot-hgrm "$s=$f")
  done
  if [[ ${#series[@]} -gt 0 ]]; then
    "$SB_BIN" bench --plot-only --plot "$out/$name.svg" \
      --label "$name: $pairs pairs, $payload B" "${series[@]}" || true
  fi
done

python3 - "$out" "$md" "$date" "$pairs" "$payload" "$rates" "$idle" "${present[@]}" <<'EOF'
import glob, json, os, statistics, sys
out, md, date, pairs, payload, rates, idle, *servers = sys.argv[1:]
rates = rates.split()
rate = rates[0]
def runs(s, name):
    rs = []
    for f in sorted(glob.glob(f"{out}/{s}.{name}.r*.json")):
        with open(f) as fh:
            rs.append(json.load(fh))
    return rs
def med(rs, key, sub=None):
    vals = []
    for r in rs:
        v = r.get(key)
        if sub and isinstance(v, dict):
            v = v.get(sub)
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None
def f(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"
lines = [f"# Signaling servers side by side, {date}", "",
         f"{pairs} pairs, {payload} B payload, server on CPU 1, bench on CPU 0; "
         "medians over rounds. Produced by perf/compare.sh (see perf/README.md).", ""]
lines += ["| server | depth 1 msgs/s | depth 1 server µs/msg | depth 4 msgs/s | "
          "depth 4 server µs/msg | p50 µs @ " + rate + "/s | p99 µs | p99.9 µs | "
          "server µs/msg @ " + rate + "/s | client µs/msg (depth 1) | idle RSS KiB/session | errors |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for s in servers:
    d1, d4, rt, il = runs(s, "depth1"), runs(s, "depth4"), runs(s, "rate" + rate), runs(s, "idle")
    errors = sum(r.get("errors", 0) for r in d1 + d4 + rt + il)
    lines.append("| " + " | ".join([
        s, f(med(d1, "msgs_per_s"), 0), f(med(d1, "server_cpu_us_per_msg"), 2),
        f(med(d4, "msgs_per_s"), 0), f(med(d4, "server_cpu_us_per_msg"), 2),
        f(med(rt, "latency_us", "p50")), f(med(rt, "latency_us", "p99")),
        f(med(rt, "latency_us", "p999")), f(med(rt, "server_cpu_us_per_msg"), 2),
        f(med(d1, "client_cpu_us_per_msg"), 2),
        f(med(il, "server_rss_per_session_kib"), 2), str(errors)]) + " |")
refs = [s for s in servers if s.startswith("echo-")]
if refs:
    lines += ["", "`echo-uring` and `echo-fastws` are references (the floor), not peers: "
              "WebSocket echo servers from perf/echo, driven with `--dialect echo`, where each "
              "message comes back to its sender instead of going to the partner. Each message "
              "still costs the server one receive and one send, as a relayed one does, so their "
              "server µs/msg is what the framing and the loopback TCP path cost before any "
              "signaling work: `echo-uring` is the least a server can do on this machine (raw "
              "io_uring, unmask and send back, no UTF-8 check, no JSON), `echo-fastws` the "
              "fastest Rust WebSocket framing measured here (fastwebsockets on one tokio thread)."]
    rows = []
    for s in servers:
        if s in refs:
            continue
        for name, label in (("depth1", "depth 1"), ("depth4", "depth 4")):
            mine = med(runs(s, name), "server_cpu_us_per_msg")
            cells = []
            for ref in refs:
                base = med(runs(ref, name), "server_cpu_us_per_msg")
                if mine is None or base is None or base <= 0:
                    cells.append("-")
                else:
                    cells.append(f"{mine - base:+.2f} µs (× {mine / base:.2f})")
            rows.append(f"| {s} | {label} | {f(mine, 2)} | " + " | ".join(cells) + " |")
    if rows:
        lines += ["", "Server CPU per message above the references (µs more, and the ratio):", "",
                  "| server | run | server µs/msg | " + " | ".join(f"vs {r}" for r in refs) + " |",
                  "|---|---|---|" + "---|" * len(refs)] + rows
# Latency at equal offered (open-loop) load, each rate, with switchboard's p99 against the
# best peer's: the references are left out of "best peer", they are not signaling servers.
peers = [s for s in servers if not s.startswith("sb-") and s not in refs]
lines += ["", "Latency at equal offered load (open loop, corrected for coordinated omission), "
          "medians over rounds:", "",
          "| offered msgs/s | server | p50 µs | p99 µs | p99.9 µs | server µs/msg | server CPU % |",
          "|---|---|---|---|---|---|---|"]
ratios = []
for r in rates:
    best = None
    for s in servers:
        rs = runs(s, "rate" + r)
        p99 = med(rs, "latency_us", "p99")
        cpu = med(rs, "server_cpu_us_per_msg")
        busy = None if cpu is None else cpu * float(r) / 1e4
        lines.append(f"| {r} | {s} | {f(med(rs, 'latency_us', 'p50'))} | {f(p99)} | "
                     f"{f(med(rs, 'latency_us', 'p999'))} | {f(cpu, 2)} | {f(busy, 0)} |")
        if s in peers and p99 is not None and (best is None or p99 < best[1]):
            best = (s, p99)
    for s in servers:
        mine = med(runs(s, "rate" + r), "latency_us", "p99")
        if s.startswith("sb-") and best and mine:
            ratios.append(f"- {r} msgs/s: {s} p99 {mine:.0f} µs vs best peer ({best[0]}) "
                          f"{best[1]:.0f} µs: 1/{best[1] / mine:.1f}")
if ratios:
    lines += ["", "p99 against the best peer at the same offered load (goal: at most 1/5):", ""] + ratios
lines += ["", f"Idle: {idle} sessions held 5 s; RSS from /proc/<pid>/status VmRSS before "
          "connecting and once all were in their rooms.", "",
          f"![depth 1 latency]({date}/depth1.svg)", "",
          ] + [f"![latency at {r} msgs/s]({date}/rate{r}.svg)" for r in rates] + [""]
with open(md, "w") as fh:
    fh.write("\n".join(lines))
print("\n".join(lines))
EOF
log "wrote $md"
