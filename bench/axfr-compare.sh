#!/usr/bin/env bash
# AXFR out: nsxdp as the primary of a knotd secondary, against knotd as the primary of the
# same zone, in the same run. Both primaries and both secondaries run side by side (idle
# when not measured); the transfers alternate between the two, one at a time.
#
# Usage: bench/axfr-compare.sh [options]
#   --names N      names in the generated zone (default 1000000: about 2.5 M RRs)
#   --runs R       transfers to each secondary (knotc -b zone-retransfer; default 3)
#   --kdig-runs K  kdig AXFRs from each primary (default: R; 0 skips them)
#   --quick        N = 20000, R = 2: a smoke run of a few seconds
#   --no-verify    skip the final check that both secondaries hold as many records as sent
#   --no-build     do not run `cargo build --release`
#
# Environment:
#   NSXDP_BIN=PATH       nsxdp binary to measure (default target/release/nsxdp; implies no build)
#   PRIMARY_CPU=1        CPU both primaries are pinned to (taskset); SECONDARY_CPU=0 for the
#                        secondaries and kdig; NSXDP_BENCH_NOPIN=1 pins nothing
#   NSXDP_BENCH_KEEP=1   keep the temporary directory (configs, logs)
#
# What is measured, per transfer (the secondary's view first):
#   * `knotc -b zone-retransfer` wall time at the secondary (SOA query, AXFR, the new zone
#     built and switched in);
#   * the secondary's log line "AXFR, incoming, ... finished, S seconds, M messages, B bytes"
#     and its "refresh ..., zone updated, S seconds";
#   * the primary's CPU time (user + system, /proc/PID/stat) across the transfer.
# Then `kdig +tcp AXFR` from each primary (output piped to `tail`), timed with /usr/bin/time,
# with the primary's CPU time. Every message is signed: TSIG hmac-sha256 on both sides.
#
# Needs python3, knotd, knotc, kdig, /usr/bin/time (taskset unless NSXDP_BENCH_NOPIN=1).
# Only 127.0.0.1 is used; ports are free ones found at run time. Every process the script
# starts is stopped by its PID at exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101          # fixed serial written by gen-zone.py
SEED=1
N=1000000
RUNS=3
KDIG_RUNS=
VERIFY=1
BUILD=1
START_TIMEOUT_S=600        # a server start (nsxdp compiles the zone, knotd loads it)
XFR_TIMEOUT_S=600          # one transfer
PRIMARY_CPU=${PRIMARY_CPU:-1}
SECONDARY_CPU=${SECONDARY_CPU:-0}
UTIL=$SCRIPT_DIR/xfr-util.py

die() { echo "axfr-compare: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --names) N=${2:?}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --kdig-runs) KDIG_RUNS=${2:?}; shift ;;
        --quick) N=20000; RUNS=2 ;;
        --no-verify) VERIFY=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
KDIG_RUNS=${KDIG_RUNS:-$RUNS}
for v in N RUNS; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
case "$KDIG_RUNS" in ''|*[!0-9]*) die "--kdig-runs must be a number" ;; esac
[ "$RUNS" -le 20 ] && [ "$KDIG_RUNS" -le 20 ] || die "at most 20 runs"

for c in python3 knotd knotc kdig; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install -y knot knot-dnsutils)"
done
[ -x /usr/bin/time ] || die "missing /usr/bin/time (apt-get install -y time)"
pin() {  # pin CPU CMD... : runs CMD pinned to CPU unless NSXDP_BENCH_NOPIN=1
    local cpu=$1; shift
    if [ "${NSXDP_BENCH_NOPIN:-0}" = 1 ]; then exec "$@"; else exec taskset -c "$cpu" "$@"; fi
}
[ "${NSXDP_BENCH_NOPIN:-0}" = 1 ] || command -v taskset >/dev/null || die "missing taskset"

bench_nsxdp
[ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP"

TMP=$(mktemp -d /tmp/nsxdp-axfr-compare.XXXXXX)
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
ZONE_RRS=$(grep -c "$(printf '\tIN\t')" "$ZONE")
cat "$ZONE" >/dev/null    # page cache warm for both primaries

SECRET=$(head -c 32 /dev/urandom | base64)
KEY="hmac-sha256:xfr:$SECRET"
free_port() { python3 "$SCRIPT_DIR/free-port.py"; }
cpu_s() { python3 "$UTIL" cpu "$1"; }
now() { date +%s.%N; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# start NAME CPU CMD... : starts CMD pinned to CPU with its stderr and stdout, each line
# timestamped, in $TMP/NAME.log; sets STARTED_PID.
start() {
    local name=$1 cpu=$2; shift 2
    (pin "$cpu" "$@") > >(python3 "$UTIL" ts >"$TMP/$name.log") 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# wait_soa NAME PORT PID: waits until the server answers the zone's SOA with SERIAL;
# prints the Unix time of that answer.
wait_soa() {
    local name=$1 port=$2 pid=$3
    if ! python3 "$UTIL" soa "$port" "$ORIGIN" --want "$SERIAL" --poll 0.05 --limit "$START_TIMEOUT_S" --pid "$pid"; then
        tail -n 20 "$TMP/$name.log" >&2
        die "$name (127.0.0.1:$port) did not serve $ORIGIN serial $SERIAL within ${START_TIMEOUT_S}s"
    fi
}

# --- the primaries ---
NP=$(free_port)
mkdir -p "$TMP/nsxdp/data"
cat >"$TMP/nsxdp/nsxdp.toml" <<EOF
[server]
listen = ["127.0.0.1:$NP"]
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
file = "$ZONE"
acl = ["secondaries"]
notify = []
notify-ns = false
EOF
log "nsxdp primary on 127.0.0.1:$NP (compiles the zone at start)"
t0=$(now)
start nsxdp-primary "$PRIMARY_CPU" "$NSXDP" serve --cores 1 --config "$TMP/nsxdp/nsxdp.toml"
NSXDP_PID=$STARTED_PID
t1=$(wait_soa nsxdp-primary "$NP" "$NSXDP_PID" | cut -d' ' -f1)
log "nsxdp primary (pid $NSXDP_PID) serves the zone after $(python3 -c "print('%.2f' % ($t1 - $t0))") s"

# knot_conf DIR PORT ROLE(primary|secondary) [PRIMARY_PORT]
knot_conf() {
    local d=$1 port=$2 role=$3 pport=${4:-}
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
EOF
    if [ "$role" = secondary ]; then
        cat <<EOF

remote:
  - id: primary
    address: 127.0.0.1@$pport
    key: xfr

template:
  - id: default
    storage: "$d/storage"
    zonefile-sync: -1
    journal-content: none

zone:
  - domain: $ORIGIN
    master: primary
    acl: peers
EOF
    else
        cat <<EOF

template:
  - id: default
    storage: "$d/storage"
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off

zone:
  - domain: $ORIGIN
    file: "$ZONE"
    acl: peers
EOF
    fi
}

KP=$(free_port)
knot_conf "$TMP/knot-primary" "$KP" primary >"$TMP/knot-primary.conf"
log "knotd primary on 127.0.0.1:$KP"
t0=$(now)
start knot-primary "$PRIMARY_CPU" knotd -c "$TMP/knot-primary.conf"
KNOT_PID=$STARTED_PID
t1=$(wait_soa knot-primary "$KP" "$KNOT_PID" | cut -d' ' -f1)
log "knotd primary (pid $KNOT_PID) serves the zone after $(python3 -c "print('%.2f' % ($t1 - $t0))") s"

# --- the secondaries: each starts empty and bootstraps with an AXFR from its primary ---
declare -A PRIMARY_PID PRIMARY_PORT SEC_PORT SEC_PID
PRIMARY_PID[nsxdp]=$NSXDP_PID; PRIMARY_PID[knotd]=$KNOT_PID
PRIMARY_PORT[nsxdp]=$NP; PRIMARY_PORT[knotd]=$KP
RESULTS=$TMP/results.txt
: >"$RESULTS"

# xfr_line NAME FROM_LINE: the first "AXFR, incoming ... finished" and "zone updated" lines
# of secondary NAME's log after line FROM_LINE, as "AXFR_S MESSAGES BYTES REFRESH_S"
# (waits up to 10 s for them to be written).
xfr_line() {
    local name=$1 from=$2 out
    for _ in $(seq 200); do
        out=$(tail -n +"$((from + 1))" "$TMP/sec-$name.log" | python3 -c '
import re, sys
axfr = refresh = None
for l in sys.stdin:
    m = re.search(r"AXFR, incoming, .*finished, ([0-9.]+) seconds, ([0-9]+) messages, ([0-9]+) bytes", l)
    if m and axfr is None:
        axfr = m.groups()
    m = re.search(r"refresh, .*zone updated, ([0-9.]+) seconds", l)
    if m and axfr is not None and refresh is None:
        refresh = m.group(1)
if axfr and refresh:
    print(*axfr, refresh)
')
        if [ -n "$out" ]; then echo "$out"; return 0; fi
        sleep 0.05
    done
    tail -n 20 "$TMP/sec-$name.log" >&2
    die "no finished AXFR in the log of the $name secondary"
}

for p in nsxdp knotd; do
    port=$(free_port)
    SEC_PORT[$p]=$port
    knot_conf "$TMP/sec-$p" "$port" secondary "${PRIMARY_PORT[$p]}" >"$TMP/sec-$p.conf"
    c0=$(cpu_s "${PRIMARY_PID[$p]}")
    la=$(loadavg)
    t0=$(now)
    start "sec-$p" "$SECONDARY_CPU" knotd -c "$TMP/sec-$p.conf"
    SEC_PID[$p]=$STARTED_PID
    t1=$(wait_soa "sec-$p" "$port" "${SEC_PID[$p]}" | cut -d' ' -f1)
    c1=$(cpu_s "${PRIMARY_PID[$p]}")
    line=$(xfr_line "$p" 0)
    read -r axfr_s msgs bytes refresh_s <<<"$line"
    wall=$(python3 -c "print('%.3f' % ($t1 - $t0))")
    cpu=$(python3 -c "print('%.3f' % ($c1 - $c0))")
    echo "$p 0 $wall $axfr_s $refresh_s $msgs $bytes $cpu $la" >>"$RESULTS"
    log "$p: secondary (pid ${SEC_PID[$p]}) bootstrapped: serves after ${wall}s (start included); AXFR ${axfr_s}s, $msgs messages, $bytes bytes; primary CPU ${cpu}s"
done

# --- retransfers, alternating which primary goes first ---
for run in $(seq "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then order="nsxdp knotd"; else order="knotd nsxdp"; fi
    for p in $order; do
        from=$(wc -l <"$TMP/sec-$p.log")
        c0=$(cpu_s "${PRIMARY_PID[$p]}")
        la=$(loadavg)
        t0=$(now)
        knotc -s "$TMP/sec-$p/run/knot.sock" -t "$XFR_TIMEOUT_S" -b zone-retransfer "$ORIGIN" >"$TMP/knotc.out" 2>&1 \
            || { cat "$TMP/knotc.out" >&2; tail -n 20 "$TMP/sec-$p.log" >&2; die "zone-retransfer at the $p secondary failed"; }
        t1=$(now)
        c1=$(cpu_s "${PRIMARY_PID[$p]}")
        line=$(xfr_line "$p" "$from")
        read -r axfr_s msgs bytes refresh_s <<<"$line"
        wall=$(python3 -c "print('%.3f' % ($t1 - $t0))")
        cpu=$(python3 -c "print('%.3f' % ($c1 - $c0))")
        echo "$p $run $wall $axfr_s $refresh_s $msgs $bytes $cpu $la" >>"$RESULTS"
        log "$p run $run: retransfer ${wall}s; AXFR ${axfr_s}s, refresh ${refresh_s}s, $msgs messages, $bytes bytes; primary CPU ${cpu}s (load $la)"
    done
done

# --- kdig AXFR from each primary ---
KDIG=$TMP/kdig.txt
: >"$KDIG"
kdig_axfr() {  # kdig_axfr PORT OUT_PREFIX: AXFR with the key, text piped to tail
    (pin "$SECONDARY_CPU" /usr/bin/time -f '%e %U %S' -o "$2.time" \
        kdig @127.0.0.1 -p "$1" -y "$KEY" +tcp +time=600 AXFR "$ORIGIN") | tail -n 5 >"$2.out"
}
for run in $(seq "$KDIG_RUNS"); do
    if [ $((run % 2)) = 1 ]; then order="nsxdp knotd"; else order="knotd nsxdp"; fi
    for p in $order; do
        c0=$(cpu_s "${PRIMARY_PID[$p]}")
        la=$(loadavg)
        kdig_axfr "${PRIMARY_PORT[$p]}" "$TMP/kdig-$p-$run"
        c1=$(cpu_s "${PRIMARY_PID[$p]}")
        read -r kwall kuser ksys < <(tail -n 1 "$TMP/kdig-$p-$run.time")
        recv=$(sed -n 's/^;; Received \([0-9]*\) B (\([0-9]*\) messages, \([0-9]*\) records).*/\1 \2 \3/p' "$TMP/kdig-$p-$run.out")
        [ -n "$recv" ] || { cat "$TMP/kdig-$p-$run.out" >&2; die "kdig AXFR from $p failed"; }
        cpu=$(python3 -c "print('%.3f' % ($c1 - $c0))")
        echo "$p $run $kwall $cpu $recv $kuser $ksys $la" >>"$KDIG"
        log "$p kdig run $run: ${kwall}s wall (kdig CPU ${kuser}+${ksys}s), primary CPU ${cpu}s; received $recv (bytes messages records)"
    done
done

# --- both secondaries hold what was sent ---
VERIFIED="not checked"
if [ "$VERIFY" = 1 ]; then
    counts=()
    for p in nsxdp knotd; do
        kdig_axfr "${SEC_PORT[$p]}" "$TMP/verify-$p"
        r=$(sed -n 's/^;; Received [0-9]* B ([0-9]* messages, \([0-9]*\) records).*/\1/p' "$TMP/verify-$p.out")
        [ -n "$r" ] || { cat "$TMP/verify-$p.out" >&2; die "kdig AXFR from the $p secondary failed"; }
        counts+=("$r")
    done
    [ "${counts[0]}" = "${counts[1]}" ] || die "the secondaries differ: ${counts[0]} records (from nsxdp) vs ${counts[1]} (from knotd)"
    VERIFIED="both secondaries transfer ${counts[0]} records (SOA twice)"
    log "$VERIFIED"
fi
grep -h 'AXFR, outgoing.*finished' "$TMP/knot-primary.log" | sed 's/^/knotd primary: /' | tail -n 3 >&2 || true

# --- table ---
python3 - "$RESULTS" "$KDIG" "$N" "$ZONE_RRS" "$(nproc)" "$(knotd -V 2>/dev/null | sed 's/.*version //')" "$VERIFIED" <<'EOF'
import statistics, sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
kd = [l.split() for l in open(sys.argv[2]) if l.strip()]
n, rrs, cores, kv, verified = sys.argv[3:8]
print("axfr-compare: N=%s names, %s RRs in the zone file; %s, %s cores, knotd %s; TSIG hmac-sha256"
      % (n, rrs, time.strftime("%Y-%m-%d %H:%M"), cores, kv))
print("retransfers (secondary: knotd; run 0 = bootstrap of a fresh secondary, its wall time includes knotd's start):")
fmt = "%-6s %4s %9s %8s %9s %8s %11s %8s %6s"
print(fmt % ("primary", "run", "wall s", "AXFR s", "refresh s", "msgs", "bytes", "CPU s", "load"))
for r in rows:
    print(fmt % tuple(r))
def med(server, col, data, skip0=True):
    v = [float(r[col]) for r in data if r[0] == server and not (skip0 and r[1] == "0")]
    return statistics.median(v) if v else float("nan")
def ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"
print()
print("medians over runs 1..   %12s %12s %8s" % ("nsxdp", "knotd", "ratio"))
summary = [("retransfer wall s", 2, rows, "%.3f"), ("AXFR s (secondary log)", 3, rows, "%.2f"),
           ("refresh s (secondary log)", 4, rows, "%.2f"), ("primary CPU s", 7, rows, "%.3f"),
           ("messages", 5, rows, "%.0f"), ("bytes", 6, rows, "%.0f")]
if kd:
    summary += [("kdig AXFR wall s", 2, kd, "%.3f"), ("primary CPU s (kdig)", 3, kd, "%.3f")]
out = {}
for label, col, data, f in summary:
    a, b = med("nsxdp", col, data), med("knotd", col, data)
    out[label] = (a, b)
    print("%-24s %12s %12s %8s" % (label, f % a, f % b, ratio(a, b)))
if kd:
    print("kdig runs (primary run wall-s primary-CPU-s bytes messages records kdig-user-s kdig-sys-s load):")
    for r in kd:
        print("  " + " ".join(r))
a, b = out["AXFR s (secondary log)"]
w, x = out["retransfer wall s"]
verdict = "PASS" if a <= b and w <= x else "MISS"
print("target: nsxdp as primary no slower than knotd (AXFR s and retransfer wall): %.2f/%.2f = %s, %.3f/%.3f = %s: %s"
      % (a, b, ratio(a, b), w, x, ratio(w, x), verdict))
print("check: %s" % verified)
EOF
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
