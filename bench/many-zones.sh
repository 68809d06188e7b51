#!/usr/bin/env bash
# Many small hosted zones on one host: nsxdp, knotd and nsd one after the other, same zones,
# same queries. Per server: cold start (process start until it answers the SOA of the LAST
# zone, on an empty data directory), restart (the same on the data directory the first run
# left), PSS after start (all its processes), dnsperf qps and server CPU per answer with one
# worker on one core, open descriptors and memory mappings (all its processes).
#
# With --reloads K, then (nsxdp and knotd) K times: one zone in the middle of the list gets a
# new record and serial in its file and is reloaded by command (`nsxdp ctl reload Z`, `knotc
# zone-reload Z`); timed from the command to the new serial answered (reload-one.py).
#
# Usage: bench/many-zones.sh [--zones N] [--duration S] [--only LIST] [--reloads K] [--no-build]
#   --zones N        hosted zones (default 1000), ~12 RRs each (gen-many-zones.py)
#   --duration S     seconds of measured dnsperf per server (default 10)
#   --only LIST      comma-separated subset of nsxdp,knotd,nsd (default all three)
#   --reloads K      one-zone reloads to time (default 0)
#   --no-build       do not run `cargo build --release` first
# Environment: NSXDP_BIN (binary to measure), SERVER_CPU=1 (taskset of the servers),
# CLIENT_CPU=0 (dnsperf), START_TIMEOUT_S=600 (per start), NSXDP_BENCH_KEEP=1 (keep the
# run directory). The generated zones are cached in /tmp/nsxdp-many-zones-N (remade when
# gen-many-zones.py changes).
#
# Needs python3, kdig, dnsperf, knotd, nsd, taskset. Traffic goes to 127.0.0.1 only; every
# server started is stopped by its PID, also on error or interrupt.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
N=1000
DURATION=10
WARMUP_S=2
ONLY=nsxdp,knotd,nsd
RELOADS=0
QUERY_LINES=200000
CLIENTS=16
OUTSTANDING=500
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
START_TIMEOUT_S=${START_TIMEOUT_S:-600}

die() { echo "many-zones: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --zones) N=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --reloads) RELOADS=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in N DURATION; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
case "$RELOADS" in ''|*[!0-9]*) die "--reloads takes a count" ;; esac
[ "$RELOADS" -le 100 ] || die "--reloads at most 100"
[ "$DURATION" -le 600 ] || die "--duration at most 600"
for c in python3 kdig dnsperf taskset; do command -v "$c" >/dev/null || die "missing $c"; done
case ",$ONLY," in *,knotd,*) command -v knotd >/dev/null || die "missing knotd (apt-get install -y knot)" ;; esac
case ",$ONLY," in *,nsd,*) command -v nsd >/dev/null || die "missing nsd (apt-get install -y nsd)" ;; esac
case ",$ONLY," in *,nsxdp,*) bench_nsxdp; [ -x "$NSXDP" ] || die "missing $NSXDP" ;; esac

# --- zones, cached per N and generator ---
GEN=$SCRIPT_DIR/gen-many-zones.py
ZDIR=/tmp/nsxdp-many-zones-$N
STAMP="$(sha256sum "$GEN" | cut -d' ' -f1) $N $QUERY_LINES"
if [ -f "$ZDIR/stamp" ] && [ "$(cat "$ZDIR/stamp")" = "$STAMP" ]; then
    log "reusing $ZDIR"
else
    log "generating $N zones in $ZDIR"
    rm -rf "$ZDIR"
    python3 "$GEN" "$N" "$ZDIR" "$QUERY_LINES"
    echo "$STAMP" >"$ZDIR/stamp"
fi
LAST=$(tail -n1 "$ZDIR/zones.list")
# The zone reloaded (--reloads): the middle one, each server its own copy of its file.
RZONE=$(sed -n "$((N / 2 + 1))p" "$ZDIR/zones.list")
# Every zone file older than a second (a snapshot records its zone file only then).
sleep 1
find "$ZDIR/zones" -type f -exec cat {} + >/dev/null

TMP=$(mktemp -d /tmp/nsxdp-many-zones-run.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then echo "many-zones: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 "$SCRIPT_DIR/free-port.py"; }

# Figures over a process and its descendants (nsd forks a server and xfrd):
# "cpu_seconds pss_kib fds maps".
proc_figures() {
    python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
tick = os.sysconf("SC_CLK_TCK")
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
tree, todo = [], [root]
while todo:
    p = todo.pop()
    tree.append(p)
    todo.extend(kids.get(p, []))
cpu = pss = fds = maps = 0
for p in tree:
    try:
        s = open("/proc/%d/stat" % p).read()
        f = s[s.rindex(")") + 2:].split()
        cpu += int(f[11]) + int(f[12])
        for line in open("/proc/%d/smaps_rollup" % p):
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
        fds += len(os.listdir("/proc/%d/fd" % p))
        maps += sum(1 for _ in open("/proc/%d/maps" % p))
    except OSError:
        pass
print("%.2f %d %d %d" % (cpu / tick, pss, fds, maps))
EOF
}

# Waits until 127.0.0.1@PORT answers the SOA of zone $2 (NOERROR, an answer); prints the
# seconds since $3 (a `date +%s.%N`). Polls every 20 ms; gives up when PID $4 dies or after
# START_TIMEOUT_S.
wait_soa() {
    python3 - "$1" "$2" "$3" "$4" "$START_TIMEOUT_S" <<'EOF'
import os, socket, struct, sys, time
port, zone, t0, pid, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
q = b"".join(bytes([len(l)]) + l.encode() for l in zone.strip(".").split(".")) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.02)
qid = 0
while time.time() - t0 < limit:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("server exited")
    qid = (qid + 1) & 0xFFFF
    s.sendto(struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + q + struct.pack("!HH", 6, 1), ("127.0.0.1", port))
    end = time.time() + 0.02
    while time.time() < end:
        try:
            m = s.recv(4096)
        except (socket.timeout, BlockingIOError):
            break
        if len(m) >= 12:
            rid, flags, _, an = struct.unpack("!HHHH", m[:8])
            if rid == qid and flags & 0x8000 and flags & 0xF == 0 and an >= 1:
                print("%.3f" % (time.time() - t0))
                sys.exit(0)
sys.exit("no answer within %.0f s" % limit)
EOF
}

stop_server() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still running after 30 s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    SERVER_PID=
}

conf_nsxdp() {
    local d=$1 port=$2
    mkdir -p "$d/data"
    {
        printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata-dir = "%s/data"\ncontrol = "%s/ctl.sock"\n' "$port" "$d" "$d"
        awk -v z="$ZDIR/zones" -v r="$RZONE" -v d="$d" '{ f = ($1 == r ? d "/" $1 ".zone" : z "/" $1 ".zone")
            printf "\n[[zone]]\nname = \"%s\"\nfile = \"%s\"\nnotify-ns = false\n", $1, f }' "$ZDIR/zones.list"
    } >"$d/nsxdp.toml"
    cp -p "$ZDIR/zones/$RZONE.zone" "$d/"
}
run_nsxdp() {
    taskset -c "$SERVER_CPU" "$NSXDP" serve --config "$1/nsxdp.toml" --cores 1 >>"$1/server.log" 2>&1 &
    SERVER_PID=$!
}

conf_knotd() {
    local d=$1 port=$2 first
    first=$(head -n1 "$ZDIR/zones.list")
    "$SCRIPT_DIR/knot-conf.sh" "$d" "$port" "$first" "$ZDIR/zones/$first.zone" notice >"$d/knot.conf"
    awk -v z="$ZDIR/zones" -v r="$RZONE" -v d="$d" 'NR > 1 { f = ($1 == r ? d "/" $1 ".zone" : z "/" $1 ".zone")
        printf "  - domain: %s\n    file: \"%s\"\n", $1, f }' "$ZDIR/zones.list" >>"$d/knot.conf"
    cp -p "$ZDIR/zones/$RZONE.zone" "$d/"
}
run_knotd() {
    taskset -c "$SERVER_CPU" knotd -c "$1/knot.conf" >>"$1/server.log" 2>&1 &
    SERVER_PID=$!
}

conf_nsd() {
    local d=$1 port=$2
    mkdir -p "$d/z"
    {
        cat <<EOF
server:
    server-count: 1
    ip-address: 127.0.0.1@$port
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$d/z"
    pidfile: "$d/nsd.pid"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    logfile: "$d/nsd.log"
    verbosity: 0
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no
EOF
        awk -v z="$ZDIR/zones" '{ printf "\nzone:\n    name: %s\n    zonefile: \"%s/%s.zone\"\n", $1, z, $1 }' \
            "$ZDIR/zones.list"
    } >"$d/nsd.conf"
}
run_nsd() {
    taskset -c "$SERVER_CPU" nsd -d -c "$1/nsd.conf" >>"$1/server.log" 2>&1 &
    SERVER_PID=$!
}

run_dnsperf() {
    local port=$1 secs=$2 out=$3
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$ZDIR/queries.txt" -l "$secs" \
        -c "$CLIENTS" -T 1 -q "$OUTSTANDING" -t 2 >"$out" 2>&1 || { cat "$out" >&2; die "dnsperf failed"; }
}

RESULTS=$TMP/results.txt
: >"$RESULTS"

# Starts server $1 (on the data it has); sets SECS to the seconds until the last zone
# answers.
start_timed() {
    local name=$1 d=$2 port=$3 t0
    t0=$(date +%s.%N)
    "run_$name" "$d"
    if ! wait_soa "$port" "$LAST" "$t0" "$SERVER_PID" >"$d/secs"; then
        tail -n 20 "$d/server.log" >&2
        die "$name did not answer $LAST on 127.0.0.1:$port"
    fi
    SECS=$(cat "$d/secs")
}

measure() {
    local name=$1 d port cold restart fig0 fig1 figs
    d=$TMP/$name
    mkdir -p "$d"
    port=$(free_port)
    "conf_$name" "$d" "$port"
    start_timed "$name" "$d" "$port"
    cold=$SECS
    log "$name: cold start ${cold}s"
    stop_server "$SERVER_PID"
    start_timed "$name" "$d" "$port"
    restart=$SECS
    log "$name: restart ${restart}s (pid $SERVER_PID)"
    sleep 1
    figs=$(proc_figures "$SERVER_PID")
    run_dnsperf "$port" "$WARMUP_S" "$d/warmup.txt"
    fig0=$(proc_figures "$SERVER_PID")
    run_dnsperf "$port" "$DURATION" "$d/dnsperf.txt"
    fig1=$(proc_figures "$SERVER_PID")
    reloads=-
    if [ "$RELOADS" -gt 0 ]; then
        case "$name" in
            nsxdp) reloads=$(python3 "$SCRIPT_DIR/reload-one.py" "$port" "$RZONE" "$d/$RZONE.zone" "$RELOADS" -- \
                "$NSXDP" ctl --socket "$d/ctl.sock" reload "$RZONE") ;;
            knotd) reloads=$(python3 "$SCRIPT_DIR/reload-one.py" "$port" "$RZONE" "$d/$RZONE.zone" "$RELOADS" -- \
                knotc -c "$d/knot.conf" zone-reload "$RZONE") ;;
        esac
        log "$name: one-zone reload (ms): $reloads"
        reloads=$(sed -e 's/.*median \([0-9.]*\) max \([0-9.]*\)/\1\/\2/' -e 's/.*timeout after \([0-9]*\) s/>\1s/' <<<"$reloads")
    fi
    stop_server "$SERVER_PID"
    python3 - "$name" "$d/dnsperf.txt" "$cold" "$restart" "$figs" "$fig0" "$fig1" "$reloads" >>"$RESULTS" <<'EOF'
import re, sys
name, path, cold, restart = sys.argv[1:5]
_, pss, fds, maps = sys.argv[5].split()
cpu0, cpu1 = float(sys.argv[6].split()[0]), float(sys.argv[7].split()[0])
t = open(path).read()
def num(label):
    m = re.search(label + r":\s+([0-9.]+)", t)
    if not m:
        sys.exit("many-zones: no '%s' in %s" % (label, path))
    return float(m.group(1))
done, qps = num("Queries completed"), num("Queries per second")
rc = re.search(r"Response codes:\s+(.*)", t)
print(name, cold, restart, "%.1f" % (int(pss) / 1024), "%.0f" % qps,
      "%.2f" % ((cpu1 - cpu0) / max(done, 1) * 1e6), fds, maps, sys.argv[8], (rc.group(1) if rc else "-").replace(" ", ""))
EOF
    log "$name: $(tail -n1 "$RESULTS")"
}

log "$N zones (last $LAST); servers on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU; $DURATION s dnsperf -c $CLIENTS -q $OUTSTANDING"
IFS=, read -r -a SERVERS <<<"$ONLY"
for s in "${SERVERS[@]}"; do
    case "$s" in nsxdp|knotd|nsd) measure "$s" ;; *) die "unknown server $s" ;; esac
done

echo "many-zones: $(date '+%Y-%m-%d %H:%M'), $N zones, $(nproc) cores, knotd $(knotd -V 2>/dev/null | sed 's/.*version //'), nsd $(nsd -v 2>&1 | head -n1 | sed 's/NSD version //')"
printf '| %-6s | %7s | %7s | %8s | %8s | %8s | %6s | %6s | %13s | %s\n' server "start s" "restart s" "PSS MiB" qps "CPU µs/q" fds maps "reload ms p50/max" rcodes
while read -r name cold restart pss qps cpu fds maps rl rc; do
    printf '| %-6s | %7s | %9s | %8s | %8s | %8s | %6s | %6s | %17s | %s\n' "$name" "$cold" "$restart" "$pss" "$qps" "$cpu" "$fds" "$maps" "$rl" "$rc"
done <"$RESULTS"
