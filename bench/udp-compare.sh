#!/usr/bin/env bash
# Kernel-UDP query throughput: nsxdp, knotd and nsd, one after the other, same zone, same
# query file, same dnsperf settings, one worker each.
#
# Usage: bench/udp-compare.sh [options]
#   --duration S     seconds dnsperf runs against each server (default 10)
#   --names N        names in the generated zone (default 100000)
#   --runs R         rounds; each round measures every server once (default 1)
#   --clients C      dnsperf -c (default 16)
#   --outstanding Q  dnsperf -q, queries in flight (default 500)
#   --rate QPS       dnsperf -Q, a fixed offered rate (default: unbounded)
#   --edns           dnsperf -e: every query carries an EDNS OPT
#   --only LIST      comma-separated subset of nsxdp,knotd,nsd (default all three)
#   --signed MODE    signed zone, MODE nsec or nsec3: the gen-zone.py --dnssec zone signed
#                    with dnssec-signzone (lib.sh, bench_signed_zone; cached), every query
#                    with EDNS (UDP size 1232) and DO=1, the signed mix of gen-queries.py
#                    (positive, DS, NXDOMAIN, NODATA, wildcard, referrals to secure and
#                    insecure delegations), sent by dnsperf -B; not with --edns
#   --latency QPS    after each throughput run, 5 s more at QPS offered (dnsperf -Q, -v: every
#                    query's latency), the p50/p90/p99/p99.9 per server in a table and a chart
#                    (bench/plot.py, python3-matplotlib) in --charts DIR
#   --charts DIR     where the chart goes (default bench/charts)
#   --no-build       do not run `cargo build --release`
#
# Environment:
#   NSXDP_BIN=PATH      nsxdp binary to measure (default target/release/nsxdp; implies no build)
#   SERVER_CPU=1        CPU the server is pinned to (taskset); CLIENT_CPU=0 for dnsperf
#   NSXDP_BENCH_KEEP=1  keep the temporary directory (configs, logs, dnsperf output)
#
# Needs python3, kdig, dnsperf, knotd, nsd, taskset; with --signed also dnssec-keygen and
# dnssec-signzone (bind9-utils). Only 127.0.0.1 is used; ports are
# free ones above 1024 found at run time. Each server is stopped by its PID.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101          # fixed serial written by gen-zone.py
SEED=1
DURATION=10
N=100000
RUNS=1
CLIENTS=16
OUTSTANDING=500
RATE=
EDNS=
SIGNED=
ONLY=nsxdp,knotd,nsd
BUILD=1
LATENCY=
CHARTS=
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
QUERY_LINES=200000         # lines in the query file (dnsperf loops over it)
NX_PERCENT=10              # share of NXDOMAIN queries
START_TIMEOUT_S=300        # per server start (nsxdp compiles, knotd/nsd load the zone)
WARMUP_S=2                 # unmeasured dnsperf run before each measurement

die() { echo "udp-compare: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?}; shift ;;
        --names) N=${2:?}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --clients) CLIENTS=${2:?}; shift ;;
        --outstanding) OUTSTANDING=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        --edns) EDNS=-e ;;
        --signed) SIGNED=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        --latency) LATENCY=${2:?}; shift ;;
        --charts) CHARTS=${2:?}; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in DURATION N RUNS CLIENTS OUTSTANDING; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
[ "$DURATION" -le 600 ] || die "--duration at most 600"
[ "$RUNS" -le 20 ] || die "--runs at most 20"
case "$SIGNED" in ''|nsec|nsec3) ;; *) die "--signed takes nsec or nsec3" ;; esac
[ -z "$SIGNED" ] || [ -z "$EDNS" ] || die "--signed sends its own EDNS (DO=1, 1232): not with --edns"

for c in python3 kdig dnsperf taskset; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install -y knot-dnsutils dnsperf util-linux)"
done
case ",$ONLY," in *,knotd,*) command -v knotd >/dev/null || die "missing knotd (apt-get install -y knot)" ;; esac
case ",$ONLY," in *,nsd,*) command -v nsd >/dev/null || die "missing nsd (apt-get install -y nsd)" ;; esac

bench_nsxdp
case ",$ONLY," in *,nsxdp,*) [ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP" ;; esac

TMP=$(mktemp -d /tmp/nsxdp-udp-compare.XXXXXX)
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

# --- zone (cached like zone-load.sh: the first line names generator hash, N and seed) ---
# --- query file: owners and types sampled from the zone, plus NXDOMAIN names ---
if [ -n "$SIGNED" ]; then
    bench_signed_zone "$SIGNED" || die "cannot make the signed zone"
    QUERIES=$TMP/queries.bin
    QUERY_OPTS=(-B)
    python3 "$SCRIPT_DIR/gen-queries.py" "$ZONE_SRC" "$QUERIES" "$ORIGIN" "$QUERY_LINES" "$NX_PERCENT" \
        --signed-mix --format wire-do
else
    bench_zone
    QUERIES=$TMP/queries.txt
    QUERY_OPTS=()
    python3 "$SCRIPT_DIR/gen-queries.py" "$ZONE" "$QUERIES" "$ORIGIN" "$QUERY_LINES" "$NX_PERCENT"
fi
cat "$ZONE" >/dev/null    # page cache warm for every server

free_port() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/free-port.py"
}

# CPU seconds "user,system" used so far by a process, its threads and its descendants
# (nsd forks its server and xfrd processes).
cpu_s() {
    python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
tick = os.sysconf("SC_CLK_TCK")
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        procs[int(d)] = (int(f[1]), int(f[11]), int(f[12]))  # ppid, utime, stime
tree, todo = set(), [root]
while todo:
    p = todo.pop()
    if p in procs and p not in tree:
        tree.add(p)
        todo.extend(c for c, v in procs.items() if v[0] == p)
print("%.2f,%.2f" % (sum(procs[p][1] for p in tree) / tick, sum(procs[p][2] for p in tree) / tick))
EOF
}

# Waits until the server on $1 answers the SOA with the generator's serial.
wait_answer() {
    local port=$1 pid=$2 t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$START_TIMEOUT_S" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        case "$(kdig @127.0.0.1 -p "$port" "$ORIGIN" SOA +short +timeout=1 +retry=0 2>/dev/null || true)" in
            *" $SERIAL "*) return 0 ;;
        esac
        sleep 0.2
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

start_nsxdp() {
    local d=$1 port=$2
    mkdir -p "$d/data"
    taskset -c "$SERVER_CPU" "$NSXDP" serve --zone "$ZONE" --listen "127.0.0.1:$port" --cores 1 \
        --data-dir "$d/data" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

start_knotd() {
    local d=$1 port=$2
    mkdir -p "$d"
    "$(dirname "${BASH_SOURCE[0]}")/knot-conf.sh" "$d" "$port" "$ORIGIN" "$ZONE" notice >"$d/knot.conf"
    taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

start_nsd() {
    local d=$1 port=$2
    mkdir -p "$d/z"
    cat >"$d/nsd.conf" <<EOF
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
    verbosity: 1
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no

zone:
    name: $ORIGIN
    zonefile: "$ZONE"
EOF
    if command -v nsd-checkconf >/dev/null; then
        nsd-checkconf "$d/nsd.conf" >&2 || die "nsd-checkconf refused $d/nsd.conf"
    fi
    taskset -c "$SERVER_CPU" nsd -d -c "$d/nsd.conf" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

# dnsperf against 127.0.0.1:$1 for $2 seconds, output to $3.
run_dnsperf() {
    local port=$1 secs=$2 out=$3
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$QUERIES" "${QUERY_OPTS[@]}" -l "$secs" \
        -c "$CLIENTS" -T 1 -q "$OUTSTANDING" ${RATE:+-Q "$RATE"} $EDNS -t 2 >"$out" 2>&1 \
        || { cat "$out" >&2; die "dnsperf failed"; }
}

# With --signed: how many DNSSEC records the server puts in three DO=1 answers (a positive
# one, an NXDOMAIN, a wildcard), so the table can be read knowing what was answered.
signed_probe() {
    local port=$1 name=$2 q out=""
    for q in "ns1.$ORIGIN A" "nx-probe.grp0.$ORIGIN A" "w-probe.wild.$ORIGIN A"; do
        # shellcheck disable=SC2086
        out+="$q: $(kdig @127.0.0.1 -p "$port" $q +dnssec +bufsize=1232 +timeout=2 +retry=0 2>/dev/null |
            grep -cE '[[:space:]](RRSIG|NSEC|NSEC3)[[:space:]]' || true) RRSIG/NSEC/NSEC3; "
    done
    log "$name DO=1 probe: $out"
}

RESULTS=$TMP/results.txt
: >"$RESULTS"

measure() {
    local name=$1 run=$2 d port before after out
    d=$TMP/$name-$run
    mkdir -p "$d"
    port=$(free_port)
    "start_$name" "$d" "$port"
    local pid=$SERVER_PID
    if ! wait_answer "$port" "$pid"; then
        tail -n 20 "$d/server.log" >&2
        die "$name did not answer on 127.0.0.1:$port within ${START_TIMEOUT_S}s"
    fi
    log "$name (pid $pid, run $run) answers on 127.0.0.1:$port; affinity $(taskset -pc "$pid" | sed 's/.*: //')"
    [ -z "$SIGNED" ] || signed_probe "$port" "$name"
    run_dnsperf "$port" "$WARMUP_S" "$d/warmup.txt"
    sleep 0.5
    before=$(cpu_s "$pid")
    out=$d/dnsperf.txt
    run_dnsperf "$port" "$DURATION" "$out"
    after=$(cpu_s "$pid")
    if [ -n "$LATENCY" ]; then
        # shellcheck disable=SC2086
        taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$QUERIES" "${QUERY_OPTS[@]}" -l 5 \
            -c "$CLIENTS" -T 1 -q "$OUTSTANDING" -Q "$LATENCY" $EDNS -t 2 -v >"$d/latency.txt" 2>&1 \
            || { tail -n 20 "$d/latency.txt" >&2; die "dnsperf -v failed"; }
        python3 - "$name" "$run" "$d/latency.txt" >>"$TMP/latency.txt" <<'EOF'
import sys
name, run, path = sys.argv[1:4]
def seconds(line):
    # "> NOERROR www.bench.test A 0.000045"; a query that timed out ("> T ...") has none.
    try:
        return float(line.split()[-1])
    except ValueError:
        return None
lat = sorted(x for x in (seconds(l) for l in open(path) if l.startswith("> ")) if x is not None)
if not lat:
    sys.exit("udp-compare: no latencies in %s" % path)
pick = lambda p: lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1e6
print(name, run, len(lat), " ".join("%.1f" % pick(p) for p in (50, 90, 99, 99.9)))
EOF
        log "$name run $run latency at $LATENCY q/s (n, p50 p90 p99 p99.9 in us): $(tail -n1 "$TMP/latency.txt")"
    fi
    stop_server "$pid"
    python3 - "$name" "$run" "$out" "$before" "$after" >>"$RESULTS" <<'EOF'
import re, sys
name, run, path = sys.argv[1], sys.argv[2], sys.argv[3]
(u0, s0), (u1, s1) = [map(float, a.split(",")) for a in sys.argv[4:6]]
t = open(path).read()
def num(label):
    m = re.search(label + r":\s+([0-9.]+)", t)
    if not m:
        sys.exit("udp-compare: no '%s' in %s" % (label, path))
    return float(m.group(1))
sent, done, lost = num("Queries sent"), num("Queries completed"), num("Queries lost")
qps, lat, elapsed = num("Queries per second"), num("Average Latency \\(s\\)"), num("Run time \\(s\\)")
rc = re.search(r"Response codes:\s+(.*)", t)
rcodes = rc.group(1).replace(" ", "") if rc else "-"
print(name, run, "%.0f" % qps, "%.6f" % lat, "%.0f" % lost, "%.0f" % done, "%.2f" % (u1 - u0 + s1 - s0),
      "%.2f" % elapsed, "%.0f" % (100 * (u1 - u0) / max(u1 - u0 + s1 - s0, 0.01)), rcodes)
EOF
    log "$name run $run: $(tail -n1 "$RESULTS")"
}

log "zone $ZONE ($N names${SIGNED:+, signed $SIGNED, queries DO=1}); $DURATION s per server, dnsperf -c $CLIENTS -T 1 -q $OUTSTANDING ${RATE:+-Q $RATE} $EDNS ${QUERY_OPTS[*]}; server on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU"
IFS=, read -r -a SERVERS <<<"$ONLY"
for run in $(seq "$RUNS"); do
    for s in "${SERVERS[@]}"; do
        case "$s" in nsxdp|knotd|nsd) measure "$s" "$run" ;; *) die "unknown server $s" ;; esac
    done
done

# --- table ---
python3 - "$RESULTS" "$DURATION" "$(knotd -V 2>/dev/null | sed 's/.*version //' || echo -)" \
    "$(nsd -v 2>&1 | head -n1 | sed 's/NSD version //')" "$(nproc)" "$SIGNED" <<'EOF'
import sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
dur, kv, nv, cores, signed = sys.argv[2:7]
print("udp-compare: %s, %s cores, knotd %s, nsd %s, %s s per server%s" % (time.strftime("%Y-%m-%d %H:%M"), cores, kv, nv, dur,
      ", signed zone (%s), queries with DO=1" % signed if signed else ""))
hdr = "%-6s %-4s %9s %9s %7s %7s %6s %5s %10s %8s %8s  %s" % (
    "server", "run", "qps", "lat ms", "lost", "cpu s", "cpu %", "usr%", "q/cpu-s", "qps/knot", "qcpu/kn", "rcodes")
print(hdr)
knot = {r[1]: r for r in rows if r[0] == "knotd"}
for r in rows:
    name, run, qps, lat, lost, done, cpu, elapsed, usr, rcodes = r
    qps, lat, lost, done, cpu, elapsed = float(qps), float(lat), float(lost), float(done), float(cpu), float(elapsed)
    qcpu = done / cpu if cpu > 0 else float("nan")
    k = knot.get(run)
    if k:
        kq, kqcpu = float(k[2]), float(k[5]) / float(k[6]) if float(k[6]) > 0 else float("nan")
        rq, rc = "%.2f" % (qps / kq), "%.2f" % (qcpu / kqcpu)
    else:
        rq = rc = "-"
    print("%-6s %-4s %9.0f %9.3f %7.0f %7.2f %6.0f %5s %10.0f %8s %8s  %s" % (
        name, run, qps, lat * 1000, lost, cpu, 100 * cpu / elapsed, usr, qcpu, rq, rc, rcodes))
print("cpu %: server CPU time / run time (near 100: the server is the limit; well below: the client is).")
print("usr%: share of the server's CPU time spent in user space; q/cpu-s: answered queries per server CPU-second.")
if signed:
    # Medians over the rounds (a shared machine is noisy), and the signed-zone target.
    med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
    stat = {}
    for r in rows:
        cpu = float(r[6])
        stat.setdefault(r[0], ([], []))[0].append(float(r[2]))
        stat[r[0]][1].append(float(r[5]) / cpu if cpu > 0 else float("nan"))
    line = []
    for name in ("nsxdp", "knotd", "nsd"):
        if name in stat:
            line.append("%s %.0f qps, %.0f q/cpu-s" % (name, med(stat[name][0]), med(stat[name][1])))
    print("medians over %d round(s): %s" % (max(len(v[0]) for v in stat.values()), "; ".join(line)))
    if "nsxdp" in stat:
        n = med(stat["nsxdp"][1])
        for peer in ("knotd", "nsd"):
            if peer in stat:
                print("q/cpu-s nsxdp/%s: %.2f%s" % (peer, n / med(stat[peer][1]), " (target >= 1)" if peer == "nsd" else ""))
EOF

# --- latency percentiles (--latency): medians over the rounds, a table and a chart ---
if [ -n "$LATENCY" ]; then
    CHARTS=${CHARTS:-$REPO/bench/charts}
    python3 - "$TMP/latency.txt" >"$TMP/latency-rows.txt" <<'EOF'
import sys
v = {}
for l in open(sys.argv[1]):
    name, run, n, *ps = l.split()
    for label, x in zip(("p50", "p90", "p99", "p99.9"), ps):
        v.setdefault((name, label), []).append(float(x))
for (name, label), xs in v.items():
    xs.sort()
    print(name, label, "%.1f" % xs[len(xs) // 2])
EOF
    echo "latency at $LATENCY queries/s offered, us (median over rounds):"
    sed 's/^/  /' "$TMP/latency-rows.txt"
    if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
        mkdir -p "$CHARTS"
        /usr/bin/python3 "$SCRIPT_DIR/plot.py" bars "$CHARTS/udp-latency.svg" <"$TMP/latency-rows.txt" \
            --title "Kernel UDP: query latency at $LATENCY queries/s (dnsperf, ${SIGNED:+signed $SIGNED, }$N names, $(date +%Y-%m-%d))" \
            --ylabel "microseconds"
    else
        log "no chart: apt-get install python3-matplotlib"
    fi
fi
