#!/usr/bin/env bash
# TCP under attack: nsxdp against knotd in the same run, each with its default TCP limits,
# serving the same generated zone on 127.0.0.1. Three attacks from bench/tcp-attack.py, one
# server at a time, each attack against a freshly started server:
#   pipeline   20 connections pipelining queries for 15 s and never reading: the server's
#              peak RSS, and its CPU time in the 5 s after the clients left;
#   slowloris  1,100 connections (20 source addresses) sending an octet every 9 s, reopened
#              when closed, for 30 s: the share of a legitimate client's TCP queries answered;
#   axfr-hold  200 connections asking AXFR of the zone and never reading: peak RSS.
#
# Usage: bench/tcp-attacks.sh [--names N] [--quick] [--no-build]
#   --names N   names in the generated zone (default 80000: about 200k RRs)
#   --quick     shorter attacks (pipeline 5 s, slowloris 300 connections for 12 s)
#   --no-build  do not run `cargo build --release`
# Environment: NSXDP_BIN=PATH (implies no build); SERVER_CPU=1 pins the servers,
# CLIENT_CPU=0 the attacks (taskset); NSXDP_BENCH_KEEP=1 keeps the temporary directory.
# Only 127.0.0.0/8 is used. Every process the script starts is stopped by its PID at exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101
SEED=1
N=80000
BUILD=1
QUICK=0
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
ATTACK=$SCRIPT_DIR/tcp-attack.py
UTIL=$SCRIPT_DIR/xfr-util.py

die() { echo "tcp-attacks: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --names) N=${2:?}; shift ;;
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for c in python3 knotd taskset; do command -v "$c" >/dev/null || die "missing $c"; done
# 1,100 client sockets and the servers' own.
ulimit -n 8192

bench_nsxdp
bench_zone
TMP=$(mktemp -d /tmp/nsxdp-tcp-attacks.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ "${NSXDP_BENCH_KEEP:-0}" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 "$SCRIPT_DIR/free-port.py"; }

wait_soa() {  # NAME PORT PID
    python3 "$UTIL" soa "$2" "$ORIGIN" --want "$SERIAL" --poll 0.05 --limit 600 --pid "$3" >/dev/null \
        || { tail -n 20 "$TMP/$1.log" >&2; die "$1 did not serve $ORIGIN"; }
}

NP=$(free_port)
mkdir -p "$TMP/nsxdp/data"
cat >"$TMP/nsxdp/nsxdp.toml" <<EOF2
[server]
listen = ["127.0.0.1:$NP"]
data-dir = "data"
control = "data/ctl.sock"

[[acl]]
name = "anyone-local"
address = ["127.0.0.0/8"]
action = ["transfer"]

[[zone]]
name = "$ORIGIN"
file = "$ZONE"
acl = ["anyone-local"]
notify-ns = false
EOF2
KP=$(free_port)
mkdir -p "$TMP/knot/run" "$TMP/knot/db" "$TMP/knot/storage"
cat >"$TMP/knot/knot.conf" <<EOF2
server:
    rundir: "$TMP/knot/run"
    listen: 127.0.0.1@$KP
log:
  - target: stderr
    any: notice
database:
    storage: "$TMP/knot/db"
acl:
  - id: local
    address: 127.0.0.0/8
    action: transfer
template:
  - id: default
    storage: "$TMP/knot/storage"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: $ORIGIN
    file: "$ZONE"
    acl: local
EOF2

if [ "$QUICK" = 1 ]; then
    PIPE=(--seconds 5); SLOW=(--conns 300 --seconds 12); HOLD=(--seconds 5)
else
    PIPE=(); SLOW=(); HOLD=()
fi

attack() {  # NAME PORT PID MODE
    local name=$1 port=$2 pid=$3 mode=$4 r
    case $mode in
        pipeline) r=$(taskset -c "$CLIENT_CPU" python3 "$ATTACK" pipeline "$port" "$pid" --origin "$ORIGIN" "${PIPE[@]}") ;;
        slowloris) r=$(taskset -c "$CLIENT_CPU" python3 "$ATTACK" slowloris "$port" "$pid" --origin "$ORIGIN" "${SLOW[@]}") ;;
        axfr-hold) r=$(taskset -c "$CLIENT_CPU" python3 "$ATTACK" axfr-hold "$port" "$pid" "$ORIGIN" "${HOLD[@]}") ;;
    esac
    echo "$name $mode $r"
    log "$name $mode: $r"
}

# Each attack against a freshly started server, so that none measures what another left.
for mode in pipeline slowloris axfr-hold; do
    log "nsxdp on 127.0.0.1:$NP, zone $ZONE"
    (cd "$TMP/nsxdp" && exec taskset -c "$SERVER_CPU" "$NSXDP" serve --cores 1 --config nsxdp.toml) >>"$TMP/nsxdp.log" 2>&1 &
    NPID=$!; PIDS+=("$NPID")
    wait_soa nsxdp "$NP" "$NPID"
    sleep 5
    attack nsxdp "$NP" "$NPID" "$mode" | tee -a "$TMP/results"
    kill "$NPID"; wait "$NPID" 2>/dev/null || true
    grep "TCP connections" "$TMP/nsxdp.log" | tail -n 1 >&2 || true

    log "knotd $(knotd --version | head -n1) on 127.0.0.1:$KP"
    taskset -c "$SERVER_CPU" knotd -c "$TMP/knot/knot.conf" >>"$TMP/knot.log" 2>&1 &
    KPID=$!; PIDS+=("$KPID")
    wait_soa knot "$KP" "$KPID"
    sleep 5
    attack knotd "$KP" "$KPID" "$mode" | tee -a "$TMP/results"
    kill "$KPID"; wait "$KPID" 2>/dev/null || true
done
echo
echo "server  attack     results"
cat "$TMP/results"
