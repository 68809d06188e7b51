#!/usr/bin/env bash
# Response rate limiting under a spoofed-source flood, nsxdp ([rrl]) against knotd
# (mod-rrl) in the same run, same zone, same flood; then kernel-UDP throughput with RRL on
# (a rate nothing reaches) and off, for both.
#
# The flood (bench/rrl-flood.py): PREFIXES /24s of 127/8 (one socket bound in each) send the
# zone's SOA query round robin at FLOOD_RATE queries a second in all for DURATION seconds,
# while a client of another prefix asks ten times a second, and so does one inside the first
# flooded /24 with a DNS cookie (cookies are on in both servers with RRL: nsxdp [cookies],
# knotd mod-cookies). Reported per server: answers to the flooded prefixes beside rate ×
# time × prefixes, slips (TC), bytes out (responses) over bytes in (queries), the other
# client's answered share, the cookie client's, and the BADCOOKIE slips it got first.
#
# Usage: bench/rrl-flood.sh [options]
#   --duration S      seconds of flood (default 10)
#   --prefixes P      flooded /24s (default 100, at most 250)
#   --flood-rate Q    flood queries a second, all prefixes together (default 20000)
#   --rate R          RRL responses a second per bucket (default 20)
#   --slip N          RRL slip (default 2)
#   --qps-duration S  seconds of dnsperf per throughput measurement (default 10; 0 skips)
#   --qps-runs R      throughput rounds, RRL off and on alternating (default 3; best and
#                     median reported: a shared machine is noisy)
#   --names N         names in the generated zone (default 10000)
#   --only LIST       comma-separated subset of nsxdp,knotd (default both)
#   --no-build        do not run `cargo build --release`
#
# Environment: NSXDP_BIN, SERVER_CPU (default 1), CLIENT_CPU (default 0),
# NSXDP_BENCH_KEEP=1 (keep the temporary directory).
#
# Needs python3, kdig, dnsperf, knotd, taskset. Only 127/8 is used; each server is stopped
# by its PID.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101
SEED=1
N=10000
DURATION=10
PREFIXES=100
FLOOD_RATE=20000
RATE=20
SLIP=2
QPS_DURATION=10
QPS_RUNS=3
ONLY=nsxdp,knotd
BUILD=1
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
START_TIMEOUT_S=300
BIG_RATE=1000000           # "RRL on, nothing limited"

die() { echo "rrl-flood: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?}; shift ;;
        --prefixes) PREFIXES=${2:?}; shift ;;
        --flood-rate) FLOOD_RATE=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        --slip) SLIP=${2:?}; shift ;;
        --qps-duration) QPS_DURATION=${2:?}; shift ;;
        --qps-runs) QPS_RUNS=${2:?}; shift ;;
        --names) N=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in DURATION PREFIXES FLOOD_RATE RATE N QPS_RUNS; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
case "$SLIP$QPS_DURATION" in *[!0-9]*) die "--slip and --qps-duration are numbers" ;; esac
[ "$DURATION" -le 600 ] && [ "$QPS_DURATION" -le 600 ] || die "durations at most 600 s"
[ "$PREFIXES" -le 250 ] || die "--prefixes at most 250"
[ "$QPS_RUNS" -le 20 ] || die "--qps-runs at most 20"

for c in python3 kdig dnsperf taskset; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install -y knot-dnsutils dnsperf util-linux)"
done
case ",$ONLY," in *,knotd,*) command -v knotd >/dev/null || die "missing knotd (apt-get install -y knot)" ;; esac

bench_nsxdp
case ",$ONLY," in *,nsxdp,*) [ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP" ;; esac

TMP=$(mktemp -d /tmp/nsxdp-rrl-flood.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_zone
python3 "$SCRIPT_DIR/gen-queries.py" "$ZONE" "$TMP/queries.txt" "$ORIGIN" 200000 10

free_port() { python3 "$SCRIPT_DIR/free-port.py"; }

wait_answer() {
    local port=$1 pid=$2 t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$START_TIMEOUT_S" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        case "$(kdig @127.0.0.1 -p "$port" "$ORIGIN" SOA +short +timeout=1 +retry=0 2>/dev/null || true)" in
            *" $SERIAL "*) return 0 ;;
        esac
        sleep 0.5
    done
    return 1
}

stop_server() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still running after 10 s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    SERVER_PID=
}

# start_NAME DIR PORT RRL_RATE (empty: RRL off)
start_nsxdp() {
    local d=$1 port=$2 rate=$3
    mkdir -p "$d/data"
    {
        printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata-dir = "%s/data"\ncontrol = "%s/control.sock"\n\n' \
            "$port" "$d" "$d"
        printf '[[zone]]\nname = "%s"\nfile = "%s"\nnotify-ns = false\n' "$ORIGIN" "$ZONE"
        [ -z "$rate" ] || printf '\n[rrl]\nrate = %s\nslip = %s\n\n[cookies]\n' "$rate" "$SLIP"
    } >"$d/nsxdp.toml"
    taskset -c "$SERVER_CPU" "$NSXDP" serve --config "$d/nsxdp.toml" --cores 1 >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

start_knotd() {
    local d=$1 port=$2 rate=$3
    mkdir -p "$d"
    KNOT_RRL=${rate:+"$rate $SLIP"} KNOT_COOKIES=${rate:+1} "$SCRIPT_DIR/knot-conf.sh" "$d" "$port" "$ORIGIN" "$ZONE" notice >"$d/knot.conf"
    taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

# start NAME DIR RRL_RATE: sets PORT, waits for the zone.
start() {
    local name=$1 d=$2 rate=$3
    PORT=$(free_port)
    "start_$name" "$d" "$PORT" "$rate"
    wait_answer "$PORT" "$SERVER_PID" || { tail -n 20 "$d/server.log" >&2; die "$name did not answer"; }
}

RESULTS=$TMP/results.txt
: >"$RESULTS"

flood() {
    local name=$1 d=$TMP/$1-flood out
    mkdir -p "$d"
    start "$name" "$d" "$RATE"
    log "$name: flood of $FLOOD_RATE q/s from $PREFIXES /24s for $DURATION s (rate $RATE, slip $SLIP)"
    # The limiter forgets the start-up queries' debt: they came from 127.0.0.1, another prefix.
    out=$(taskset -c "$CLIENT_CPU" python3 "$SCRIPT_DIR/rrl-flood.py" "$PORT" "$ORIGIN." SOA "$PREFIXES" \
        "$FLOOD_RATE" "$DURATION")
    stop_server "$SERVER_PID"
    echo "flood $name $out" >>"$RESULTS"
    log "$name: $out"
    if [ "$name" = nsxdp ]; then
        log "nsxdp: $(grep -c 'rrl: .* limited' "$d/server.log") 'limited' log lines; $(grep 'stopping; UDP' "$d/server.log" | grep -o 'rrl_.*')"
    fi
}

# dnsperf against the server started with RRL at BIG_RATE (on) or without (off), round R.
qps() {
    local name=$1 mode=$2 d=$TMP/$1-qps-$2-$3 rate=
    mkdir -p "$d"
    [ "$mode" = off ] || rate=$BIG_RATE
    start "$name" "$d" "$rate"
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$TMP/queries.txt" -l 2 -c 16 -T 1 -q 500 -t 2 \
        >"$d/warmup.txt" 2>&1 || true
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$TMP/queries.txt" -l "$QPS_DURATION" -c 16 -T 1 \
        -q 500 -t 2 >"$d/dnsperf.txt" 2>&1 || { cat "$d/dnsperf.txt" >&2; die "dnsperf failed"; }
    stop_server "$SERVER_PID"
    local q
    q=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$d/dnsperf.txt")
    echo "qps $name $mode $q" >>"$RESULTS"
    log "$name RRL $mode: $q q/s"
}

IFS=, read -r -a SERVERS <<<"$ONLY"
for s in "${SERVERS[@]}"; do
    case "$s" in nsxdp|knotd) ;; *) die "unknown server $s" ;; esac
    flood "$s"
done
if [ "$QPS_DURATION" -gt 0 ]; then
    for r in $(seq "$QPS_RUNS"); do
        for s in "${SERVERS[@]}"; do
            # Which goes first alternates, so that a drift of the machine favours neither.
            if [ $((r % 2)) = 1 ]; then qps "$s" off "$r"; qps "$s" on "$r"; else qps "$s" on "$r"; qps "$s" off "$r"; fi
        done
    done
fi

python3 - "$RESULTS" "$RATE" "$SLIP" "$PREFIXES" "$FLOOD_RATE" "$(knotd -V 2>/dev/null | sed 's/.*version //' || echo -)" \
    "$(nproc)" <<'EOF'
import sys, time
path, rate, slip, prefixes, flood_rate, kv, cores = sys.argv[1:8]
rate, prefixes = int(rate), int(prefixes)
rows = [l.split() for l in open(path) if l.strip()]
print("rrl-flood: %s, %s cores, knotd %s; rate %d, slip %s, %d flooded /24s at %s q/s in all"
      % (time.strftime("%Y-%m-%d %H:%M"), cores, kv, rate, slip, prefixes, flood_rate))
print("%-6s %8s %8s %11s %8s %9s %8s %8s %9s %7s" % ("server", "sent", "answers", "rate*t*pfx", "ans/rt", "slips",
                                                       "out/in", "other %", "cookie %", "badck"))
for r in rows:
    if r[0] != "flood":
        continue
    kv_ = dict(x.split("=") for x in r[2:])
    g = lambda k: float(kv_[k])
    allowed = rate * g("seconds") * prefixes
    print("%-6s %8.0f %8.0f %11.0f %8.3f %9.0f %8.3f %8.1f %9.1f %7.0f" % (
        r[1], g("flood_sent"), g("flood_answers"), allowed, g("flood_answers") / allowed, g("flood_slips"),
        g("flood_bytes_in") / max(g("flood_bytes_out"), 1), 100 * g("legit_answered") / max(g("legit_sent"), 1),
        100 * g("cookie_answered") / max(g("cookie_sent"), 1), g("cookie_badcookie")))
qps = {}
for r in rows:
    if r[0] == "qps" and len(r) > 3:
        qps.setdefault((r[1], r[2]), []).append(float(r[3]))
if qps:
    print("%-6s %10s %10s %8s %10s %10s %8s  (%s rounds)" % ("server", "best off", "best on", "on/off", "median off",
                                                          "median on", "on/off", len(next(iter(qps.values())))))
    for name in sorted({k[0] for k in qps}):
        off, on = sorted(qps.get((name, "off"), [])), sorted(qps.get((name, "on"), []))
        if off and on:
            mo, mn = off[len(off) // 2], on[len(on) // 2]
            print("%-6s %10.0f %10.0f %8.3f %10.0f %10.0f %8.3f" % (name, off[-1], on[-1], on[-1] / off[-1], mo, mn,
                                                                   mn / mo))
print("answers: responses with TC clear to the flooded prefixes; ans/rt: answers / (rate x seconds x prefixes);")
print("out/in: bytes of responses over bytes of queries of the flood; other %: the other prefix's client answered.")
EOF
