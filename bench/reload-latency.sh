#!/usr/bin/env bash
# Reload latency: a change of CHANGE RRs to the zone file of a primary, the reload command,
# and the time until a knotd secondary (notified, pulling by IXFR) serves the new serial.
# nsxdp as the primary (`nsxdp ctl reload`), and, for comparison, knotd as the primary
# (`zonefile-load: difference`, `knotc -b zone-reload`), in the same run: both pairs run
# side by side and the reloads alternate between them, one at a time.
#
# Usage: bench/reload-latency.sh [options]
#   --names N     names in the generated zone (default 100000: about 250 k RRs)
#   --runs R      reloads of each primary (default 10)
#   --change C    RRs changed per reload: C/2 removed, C/2 added, SOA serial + 1 (default 1000)
#   --only LIST   nsxdp, knotd or nsxdp,knotd (default both)
#   --quick       N = 20000, R = 3
#   --no-build    do not run `cargo build --release`
#   --chart FILE  also draw the medians of each phase for each primary as grouped bars (SVG,
#                 bench/plot.py with python3-matplotlib; default bench/charts/reload-latency.svg
#                 when matplotlib is there, else no chart)
#
# Environment:
#   NSXDP_BIN=PATH       nsxdp binary to measure (default target/release/nsxdp; implies no build)
#   NSXDP_BENCH_KEEP=1   keep the temporary directory (configs, zone versions, logs)
#
# Per reload: the zone file is rewritten first (version V: the generated zone, serial + V,
# and C/2 A records at names chg<V>-<j>; so V-1 → V removes C/2 RRs and adds C/2). Then one
# python3 process takes t0, runs the reload command, and polls the secondary's SOA over UDP
# every 2 ms until it has the new serial (t2). Every server's log is timestamped line by line
# as it is written (knotd's own timestamps are in whole seconds), which splits t2 - t0 into:
# the reload command (for nsxdp also the time it reports: "in N ms"), until the secondary
# logs the NOTIFY, NOTIFY → "IXFR, incoming, started", the IXFR (started → finished; knotd
# also prints its own duration), and finished → the new serial answered.
#
# Needs python3, knotd, knotc, kdig. Only 127.0.0.1 is used; ports are free ones found at run
# time. Every process the script starts is stopped by its PID at exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SEED=1
N=100000
RUNS=10
CHANGE=1000
ONLY=nsxdp,knotd
BUILD=1
CHART=
START_TIMEOUT_S=300
RELOAD_TIMEOUT_S=30        # one reload until the secondary serves it
UTIL=$SCRIPT_DIR/xfr-util.py

die() { echo "reload-latency: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --names) N=${2:?}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --change) CHANGE=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --quick) N=20000; RUNS=3 ;;
        --no-build) BUILD=0 ;;
        --chart) CHART=${2:?}; shift ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in N RUNS CHANGE; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
[ "$RUNS" -le 100 ] || die "--runs at most 100"
[ "$CHANGE" -ge 2 ] && [ "$CHANGE" -le 100000 ] || die "--change between 2 and 100000"
HALF=$((CHANGE / 2))
IFS=, read -r -a SERVERS <<<"$ONLY"
for s in "${SERVERS[@]}"; do
    case "$s" in nsxdp|knotd) ;; *) die "--only: unknown server $s" ;; esac
done
has() { case ",$ONLY," in *,"$1",*) return 0 ;; *) return 1 ;; esac; }

for c in python3 knotd knotc; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install -y knot)"
done

if has nsxdp; then
    bench_nsxdp
    [ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP"
fi

TMP=$(mktemp -d /tmp/nsxdp-reload-latency.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- zone (cached like zone-load.sh: the first line names generator hash, N and seed) ---
bench_zone
BASE=$ZONE
ZONE_RRS=$(grep -c "$(printf '\tIN\t')" "$BASE")

SECRET=$(head -c 32 /dev/urandom | base64)
free_port() { python3 "$SCRIPT_DIR/free-port.py"; }

# start NAME CMD... : starts CMD with its output, each line timestamped, in $TMP/NAME.log.
start() {
    local name=$1; shift
    ("$@") > >(python3 "$UTIL" ts >"$TMP/$name.log") 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

wait_soa() {  # wait_soa NAME PORT PID SERIAL
    if ! python3 "$UTIL" soa "$2" "$ORIGIN" --want "$4" --poll 0.05 --limit "$START_TIMEOUT_S" --pid "$3" >/dev/null; then
        tail -n 20 "$TMP/$1.log" >&2
        die "$1 (127.0.0.1:$2) did not serve $ORIGIN serial $4 within ${START_TIMEOUT_S}s"
    fi
}

# knot_conf DIR PORT ROLE(primary|secondary) PEER_PORT
knot_conf() {
    local d=$1 port=$2 role=$3 peer=$4
    mkdir -p "$d/run" "$d/db" "$d/storage"
    cat <<EOF
server:
    rundir: "$d/run"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    # A reader slowed down by a busy machine (kdig printing 2.5 M records) must not be
    # dropped: Knot's default allows 500 ms per TCP message.
    tcp-io-timeout: 60000
    tcp-remote-io-timeout: 60000

log:
  - target: stderr
    any: info

database:
    storage: "$d/db"

key:
  - id: xfr
    algorithm: hmac-sha256
    secret: $SECRET

acl:
  - id: peers
    address: 127.0.0.0/8
    key: xfr
    action: [transfer, notify]

remote:
  - id: peer
    address: 127.0.0.1@$peer
    key: xfr
EOF
    if [ "$role" = secondary ]; then
        cat <<EOF

template:
  - id: default
    storage: "$d/storage"
    zonefile-sync: -1

zone:
  - domain: $ORIGIN
    master: peer
    acl: peers
EOF
    else
        cat <<EOF

template:
  - id: default
    storage: "$d/storage"
    zonefile-load: difference
    journal-content: changes
    zonefile-sync: -1
    semantic-checks: off

zone:
  - domain: $ORIGIN
    file: "$TMP/knotd/zone"
    acl: peers
    notify: peer
EOF
    fi
}

declare -A PRIMARY_PORT SEC_PORT RELOAD_CMD
SERIAL0=
for p in "${SERVERS[@]}"; do
    mkdir -p "$TMP/$p"
    SERIAL0=$(python3 "$UTIL" edit "$BASE" "$TMP/$p/zone" 0 "$HALF")
    PRIMARY_PORT[$p]=$(free_port)
    SEC_PORT[$p]=$(free_port)
    if [ "$p" = nsxdp ]; then
        cat >"$TMP/nsxdp/nsxdp.toml" <<EOF
[server]
listen = ["127.0.0.1:${PRIMARY_PORT[$p]}"]
data-dir = "data"
control = "data/ctl.sock"

[[key]]
name = "xfr"
algorithm = "hmac-sha256"
secret = "$SECRET"

[[acl]]
name = "secondaries"
address = ["127.0.0.0/8"]
key = "xfr"
action = ["transfer"]

[[zone]]
name = "$ORIGIN"
file = "zone"
acl = ["secondaries"]
notify = ["127.0.0.1:${SEC_PORT[$p]} key xfr"]
notify-ns = false
EOF
        start nsxdp-primary "$NSXDP" serve --cores 1 --config "$TMP/nsxdp/nsxdp.toml"
        RELOAD_CMD[$p]="$NSXDP ctl --config $TMP/nsxdp/nsxdp.toml reload $ORIGIN"
    else
        knot_conf "$TMP/knotd/primary" "${PRIMARY_PORT[$p]}" primary "${SEC_PORT[$p]}" >"$TMP/knotd/primary.conf"
        start knotd-primary knotd -c "$TMP/knotd/primary.conf"
        RELOAD_CMD[$p]="knotc -s $TMP/knotd/primary/run/knot.sock -t $RELOAD_TIMEOUT_S -b zone-reload $ORIGIN"
    fi
    ppid=$STARTED_PID
    wait_soa "$p-primary" "${PRIMARY_PORT[$p]}" "$ppid" "$SERIAL0"
    knot_conf "$TMP/$p/secondary" "${SEC_PORT[$p]}" secondary "${PRIMARY_PORT[$p]}" >"$TMP/$p/secondary.conf"
    start "$p-secondary" knotd -c "$TMP/$p/secondary.conf"
    wait_soa "$p-secondary" "${SEC_PORT[$p]}" "$STARTED_PID" "$SERIAL0"
    log "$p primary on 127.0.0.1:${PRIMARY_PORT[$p]}, its knotd secondary on 127.0.0.1:${SEC_PORT[$p]}: serial $SERIAL0 (AXFR)"
done
log "zone: $N names, $ZONE_RRS RRs + $HALF; $RUNS reloads per primary of $CHANGE RRs each ($HALF removed, $HALF added)"

RESULTS=$TMP/results.txt
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    order=("${SERVERS[@]}")
    if [ $((run % 2)) = 0 ] && [ "${#SERVERS[@]}" = 2 ]; then order=("${SERVERS[1]}" "${SERVERS[0]}"); fi
    for p in "${order[@]}"; do
        want=$(python3 "$UTIL" edit "$BASE" "$TMP/$p/zone" "$run" "$HALF")
        from=$(wc -l <"$TMP/$p-secondary.log")
        la=$(cut -d' ' -f1 /proc/loadavg)
        # shellcheck disable=SC2086
        if ! python3 "$UTIL" reload "${SEC_PORT[$p]}" "$ORIGIN" "$want" --poll 0.002 --limit "$RELOAD_TIMEOUT_S" \
            -- ${RELOAD_CMD[$p]} >"$TMP/reload-$p-$run.out"; then
            cat "$TMP/reload-$p-$run.out" >&2
            tail -n 20 "$TMP/$p-primary.log" "$TMP/$p-secondary.log" >&2
            die "$p run $run: the secondary did not serve serial $want within ${RELOAD_TIMEOUT_S}s"
        fi
        sleep 0.2    # let the secondary finish its log lines
        tail -n +"$((from + 1))" "$TMP/$p-secondary.log" >"$TMP/sec-$p-$run.log"
        python3 - "$p" "$run" "$want" "$la" "$TMP/reload-$p-$run.out" "$TMP/sec-$p-$run.log" >>"$RESULTS" <<'EOF'
import re, sys
p, run, want, la, reload_out, sec_log = sys.argv[1:7]
lines = open(reload_out).read().splitlines()
t0, t1, t2, rc = lines[0].split()
t0, t1, t2 = float(t0), float(t1), float(t2)
out = "\n".join(lines[1:])
if rc != "0":
    sys.exit("reload-latency: %s run %s: the reload command failed: %s" % (p, run, out))
m = re.search(r"in ([0-9.]+) ms", out)
reported = m.group(1) if m else "-"
notify = start = fin = fin_s = msgs = nbytes = None
kind = "-"
for l in open(sec_log):
    ts, _, text = l.partition(" ")
    ts = float(ts)
    if notify is None and "notify, incoming" in text:
        notify = ts
    m = re.search(r"(IXFR|AXFR), incoming, .*started", text)
    if m and start is None:
        start, kind = ts, m.group(1)
    m = re.search(r"(IXFR|AXFR), incoming, .*finished, ([0-9.]+) seconds, ([0-9]+) messages, ([0-9]+) bytes", text)
    if m and fin is None:
        fin, kind, fin_s, msgs, nbytes = ts, m.group(1), m.group(2), m.group(3), m.group(4)
    if "fallback to AXFR" in text:
        kind = "IXFR>AXFR"
ms = lambda a, b: "%.1f" % ((b - a) * 1000) if a is not None and b is not None else "-"
print(p, run, want, "%.1f" % ((t2 - t0) * 1000), ms(t0, t1), reported, ms(t0, notify), ms(notify, start),
      ms(start, fin), fin_s or "-", ms(fin, t2), kind, msgs or "-", nbytes or "-", la)
EOF
        log "$p run $run: $(tail -n 1 "$RESULTS")"
    done
done

python3 - "$RESULTS" "$N" "$ZONE_RRS" "$CHANGE" "$(nproc)" "$(knotd -V 2>/dev/null | sed 's/.*version //')" <<'EOF'
import statistics, sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n, rrs, change, cores, kv = sys.argv[2:7]
print("reload-latency: N=%s names (%s RRs), %s RRs changed per reload; %s, %s cores, knotd %s; TSIG hmac-sha256"
      % (n, rrs, change, time.strftime("%Y-%m-%d %H:%M"), cores, kv))
print("times in ms from t0 (the reload command starts); 'notify': t0 -> the secondary logs the NOTIFY;")
print("'->xfr': NOTIFY -> transfer started; 'xfr': started -> finished (knotd's own figure in s);")
print("'->serve': transfer finished -> the new serial answered; 'total': t0 -> the new serial answered.")
fmt = "%-6s %4s %10s %8s %8s %8s %8s %8s %8s %6s %8s %-9s %5s %7s %5s"
print(fmt % ("primary", "run", "serial", "total", "reload", "reported", "notify", "->xfr", "xfr", "xfr s",
             "->serve", "type", "msgs", "bytes", "load"))
for r in rows:
    print(fmt % tuple(r))
print()
summary = {}
for p in ("nsxdp", "knotd"):
    v = [float(r[3]) for r in rows if r[0] == p]
    if not v:
        continue
    col = lambda i: [float(r[i]) for r in rows if r[0] == p and r[i] != "-"]
    med = lambda x: "%.1f" % statistics.median(x) if x else "-"
    summary[p] = statistics.median(v)
    types = sorted(set(r[11] for r in rows if r[0] == p))
    print("%-6s total ms: median %.1f, max %.1f, min %.1f over %d; medians: reload %s, reported %s, notify %s, "
          "->xfr %s, xfr %s, ->serve %s; transfer types: %s; target < 1000 ms: median %s, every run %s"
          % (p, statistics.median(v), max(v), min(v), len(v), med(col(4)), med(col(5)), med(col(6)),
             med(col(7)), med(col(8)), med(col(10)), ",".join(types),
             "PASS" if statistics.median(v) < 1000 else "MISS", "PASS" if max(v) < 1000 else "MISS"))
if len(summary) == 2:
    print("ratio nsxdp/knotd (median total): %.2f" % (summary["nsxdp"] / summary["knotd"]))
EOF
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- chart: median of each phase, per primary ---
PLOT_PYTHON=/usr/bin/python3    # Debian's, where python3-matplotlib installs
if [ -z "$CHART" ] && "$PLOT_PYTHON" -c 'import matplotlib' 2>/dev/null; then
    CHART=$REPO/bench/charts/reload-latency.svg
fi
if [ -n "$CHART" ]; then
    mkdir -p "$(dirname "$CHART")"
    python3 - "$RESULTS" <<'EOF' | "$PLOT_PYTHON" "$SCRIPT_DIR/plot.py" bars "$CHART" \
        --title "Reload of $CHANGE RRs until a knotd secondary serves it ($N names, $(date +%Y-%m-%d))" \
        --ylabel "ms, median over $RUNS reloads"
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
phases = [("reload-cmd", 4), ("t0->NOTIFY", 6), ("NOTIFY->xfr", 7), ("xfr", 8), ("xfr->served", 10), ("total", 3)]
for p in ("nsxdp", "knotd"):
    for label, i in phases:
        v = [float(r[i]) for r in rows if r[0] == p and r[i] != "-"]
        if v:
            print("%s-primary %s %.1f" % (p, label, statistics.median(v)))
EOF
fi
