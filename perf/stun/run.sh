#!/usr/bin/env bash
# STUN Binding answers per server core-second (issue 5): switchboard (one shard, epoll and
# io_uring drivers, rate limits raised) against coturn (--stun-only) and the minimal batched
# responder of this directory (recvmmsg -> 32-byte answer -> sendmmsg: the physical limit),
# all driven by the same closed-loop client (`stun-perf load`).
#
#   perf/stun/run.sh                      # 3 rounds x 2 scenarios x 4 servers x ~11 s, ~5 min
#   ROUNDS=1 DURATION=3 perf/stun/run.sh  # quicker
#   PROFILE=1 perf/stun/run.sh            # also perf-record switchboard, top frames in the file
#
# Each server runs alone on CPU 1 (taskset -c 1), the client on CPU 0; every run starts a
# fresh server; the order of the servers rotates from round to round so that noise from the
# machine spreads over all of them. Results go to perf/results/stun-<date>.md.
#
# Environment:
#   ROUNDS       rounds of alternation (default 3)
#   DURATION     measured seconds per run (default 10); WARMUP unmeasured seconds (default 1)
#   OUTSTANDING  most requests the client keeps in flight (default 256)
#   RATE         requests/s offered to every server in the open-loop scenario (default 100000,
#                under coturn's capacity here); 0 skips it. The closed-loop scenario always runs.
#   SERVERS      which to run (default: switchboard-epoll switchboard-uring coturn minimal)
#   RT           1 (default): run client and server SCHED_FIFO (chrt -f 10). On a 2-core
#                machine shared with compile jobs, a woken benchmark process otherwise waits
#                for a time slice and both sides idle ~55 %; the kernel's RT throttle
#                (sched_rt_runtime_us, 95 %) still leaves the others 5 %. 0: normal priority.
#   PROFILE      1: one extra switchboard-epoll run under `perf record` (needs linux-perf)
#   SB_BIN       switchboard binary (default: cargo build --release, target/release)
#   FORCE        1: run even if another benchmark (perf/compare.sh, stun-perf load) is running
#   KEEP_WORK    1: keep the scratch directory (raw lines, server logs, perf.data) in /tmp
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/perf/stun"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10}"
warmup="${WARMUP:-1}"
outstanding="${OUTSTANDING:-256}"
rate="${RATE:-100000}"
servers=(${SERVERS:-switchboard-epoll switchboard-uring coturn minimal})
rt="${RT:-1}"
profile="${PROFILE:-0}"
date="$(date +%Y-%m-%d)"
md="$repo/perf/results/stun-$date.md"
work="$(mktemp -d /tmp/stun-perf.XXXXXX)"
runs="$work/runs.txt"
: >"$runs"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

pid=0
cleanup() {
  if [[ $pid != 0 ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

# Two benchmarks on the same two CPUs measure each other; with RT=1 this one would also
# starve the other's processes.
if [[ ${FORCE:-0} != 1 ]] && pgrep -f 'perf/compare.sh|stun-perf load|switchboard bench' >/dev/null; then
  log "another benchmark is running ($(pgrep -af 'perf/compare.sh|stun-perf load|switchboard bench' | head -n 1)); wait for it or set FORCE=1"
  exit 1
fi

# ----- tools -------------------------------------------------------------------------------
if ! command -v turnserver >/dev/null; then
  log "installing coturn (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends coturn
fi
# The package may start a system turnserver on 3478; ours use their own ports, but it would
# take CPU during the runs.
if command -v systemctl >/dev/null && systemctl is-active --quiet coturn 2>/dev/null; then
  systemctl stop coturn || true
fi
if [[ $profile == 1 ]] && ! command -v perf >/dev/null; then
  log "installing linux-perf (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf
fi
if [[ -z "${SB_BIN:-}" ]]; then
  log "building switchboard (release)"
  (cd "$repo" && nice -n 10 cargo build --release --bin switchboard >&2)
  SB_BIN="$repo/target/release/switchboard"
fi
log "building stun-perf (release)"
(cd "$here" && nice -n 10 cargo build --release >&2)
STUN_PERF="$here/target/release/stun-perf"

prio=()
[[ $rt == 1 ]] && prio=(chrt -f 10)

# ----- servers -----------------------------------------------------------------------------
free_port() { # a port nothing listens on, UDP or TCP (switchboard binds both, SO_REUSEPORT)
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if [[ -z "$(ss -Hlnut "sport = :$p")" ]]; then
      echo "$p"
      return
    fi
  done
  log "no free port found"
  exit 1
}

server_command() { # name port -> the command, one word per line
  case "$1" in
    switchboard-epoll|switchboard-uring)
      printf '%s\n' env SWITCHBOARD_SERVER_PIN_THREADS=false \
        SWITCHBOARD_STUN_RATE_PER_SECOND=1000000000 SWITCHBOARD_STUN_BURST_MAX=1000000000 \
        SWITCHBOARD_ADMIN_ENABLED=false SWITCHBOARD_LOG=warn \
        "${prio[@]}" taskset -c 1 "$SB_BIN" serve --listen 127.0.0.1:0 \
        --stun-listen "127.0.0.1:$2" --shards 1 --driver "${1#switchboard-}" --log-format json ;;
    coturn)
      printf '%s\n' "${prio[@]}" taskset -c 1 turnserver -n --stun-only --no-cli --no-tls \
        --no-dtls --listening-ip=127.0.0.1 "--listening-port=$2" --log-file=stdout ;;
    minimal)
      printf '%s\n' "${prio[@]}" taskset -c 1 "$STUN_PERF" responder --listen "127.0.0.1:$2" ;;
    *) log "unknown server $1"; exit 1 ;;
  esac
}

start_server() { # name -> sets pid, port
  port="$(free_port)"
  local cmd
  mapfile -t cmd < <(server_command "$1" "$port")
  "${cmd[@]}" >>"$work/$1.log" 2>&1 &
  pid=$!
  if ! "$STUN_PERF" probe --server "127.0.0.1:$port" --timeout-ms 10000 >/dev/null; then
    log "$1 did not answer on 127.0.0.1:$port within 10 s; its log:"
    tail -n 20 "$work/$1.log" >&2
    exit 1
  fi
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=0
}

load_command() { # name round port pid [rate]
  printf '%s\n' "${prio[@]}" taskset -c 0 "$STUN_PERF" load --server "127.0.0.1:$3" \
    --server-pid "$4" --outstanding "$outstanding" --duration-s "$duration" \
    --warmup-s "$warmup" --timeout-ms 1000 --label "$1" --round "$2"
  if [[ -n ${5:-} ]]; then printf '%s\n' --rate "$5"; fi
}

# Oneshot sizes of the answer to a bare 20-byte request (amplification at rest).
for s in "${servers[@]}"; do
  start_server "$s"
  log "$s: $("$STUN_PERF" probe --server "127.0.0.1:$port")"
  stop_server
done

n=${#servers[@]}
scenario_rates=("")
[[ $rate != 0 ]] && scenario_rates+=("$rate")
for r in $(seq "$rounds"); do
  for scenario_rate in "${scenario_rates[@]}"; do
    for i in $(seq 0 $((n - 1))); do
      s="${servers[$(((i + r - 1) % n))]}"
      start_server "$s"
      mapfile -t cmd < <(load_command "$s" "$r" "$port" "$pid" "$scenario_rate")
      line="$("${cmd[@]}")"
      stop_server
      echo "$line" >>"$runs"
      log "round $r ${scenario_rate:-closed} $s: $(grep -o 'responses_per_s=[0-9]*\|responses_per_core_s=[0-9]*\|drops=[0-9]*\|p99_us=[0-9.]*' <<<"$line" | tr '\n' ' ')"
    done
  done
done

# ----- profile -----------------------------------------------------------------------------
profile_text=""
if [[ $profile == 1 ]]; then
  s=switchboard-epoll
  start_server "$s"
  mapfile -t cmd < <(load_command "$s" 0 "$port" "$pid")
  "${cmd[@]}" >/dev/null &
  load_pid=$!
  sleep "$warmup"
  # cpu-clock: VMs often expose no hardware counters, and `cycles` then fails. perf itself
  # runs above the benchmark's priority, else it starves and records nothing.
  perf_prio=()
  [[ $rt == 1 ]] && perf_prio=(chrt -f 20)
  if ! "${perf_prio[@]}" perf record -e cpu-clock -F 999 -g -p "$pid" -o "$work/perf.data" \
      -- sleep $((duration > 5 ? 5 : duration)) >"$work/perf.log" 2>&1; then
    log "perf record failed: $(tail -n 3 "$work/perf.log")"
  fi
  wait "$load_pid" || true
  stop_server
  if [[ -s "$work/perf.data" ]]; then
    report() { perf report -i "$work/perf.data" --no-children --stdio -g none "$@" \
      2>>"$work/perf-report.log" | grep -v '^#' | grep -v '^$' || true; }
    profile_text="$(
      echo "-- by binary"
      report --sort dso | head -n 8
      echo "-- by symbol, self time >= 1.5 %"
      report --percent-limit 1.5 | head -n 30
      echo "-- switchboard's own code (share of all samples)"
      report --dsos switchboard --percent-limit 0.3 | head -n 20
    )"
  fi
fi

# ----- report ------------------------------------------------------------------------------
sbrev="$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
{
  echo "# STUN Binding: answers per server core-second ($date)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r)."
  echo "switchboard $sbrev$([[ $dirty != 0 ]] && echo " + $dirty uncommitted files"),"
  echo "coturn $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo '?'), client and reference: perf/stun (stun-perf)."
  echo
  echo "Run: \`ROUNDS=$rounds DURATION=$duration WARMUP=$warmup OUTSTANDING=$outstanding RATE=$rate RT=$rt SERVERS=\"${servers[*]}\" perf/stun/run.sh\`"
  echo
  echo "Each run (server on CPU 1, client on CPU 0, a fresh server per run; \`PORT\`/\`PID\` vary):"
  echo
  echo '```sh'
  for s in "${servers[@]}"; do
    echo "$(server_command "$s" PORT | tr '\n' ' ' | sed "s|$repo/||g") &"
  done
  echo "$(load_command SERVER ROUND PORT PID | tr '\n' ' ' | sed "s|$repo/||g")  # + --rate $rate in the open-loop scenario"
  echo '```'
  echo
  echo "**responses per server core-s** = answers received in the measured window / the server's"
  echo "utime+stime (\`/proc/PID/stat\`, all threads) over the same window. Latency is from the"
  echo "client's send to its receive with $outstanding requests outstanding (closed loop), so it"
  echo "includes the client's own queueing. A drop is a request unanswered after 1 s."
  echo "On loopback the sender's \`sendmmsg\` also runs the receiver's softirq delivery, so most"
  echo "of every server's CPU is \`sendmmsg\`: the same rule for every server. In the closed loop"
  echo "the client is CPU-bound too (it makes the same system calls per request as the minimal"
  echo "responder). See perf/stun/README.md."
} >"$work/preamble.md"
"$STUN_PERF" report --results "$runs" --preamble "$work/preamble.md" >"$md"
if [[ -n $profile_text ]]; then
  {
    echo
    echo "## Profile: switchboard-epoll, closed loop (perf record -e cpu-clock -F 999 -g -p PID, self time)"
    echo
    echo '```'
    echo "$profile_text"
    echo '```'
  } >>"$md"
fi
log "wrote $md"
