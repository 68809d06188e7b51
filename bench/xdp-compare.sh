#!/usr/bin/env bash
# AF_XDP query throughput: nsxdp (--xdp, one queue, one loop) and Knot DNS in XDP mode (one
# UDP worker), one after the other in the same run, on the same testbed (two network
# namespaces joined by veth, ../shared/testbed.md), same zone, same query file, same load:
# kxdpgun on CLIENT_CPU in the client namespace, the server pinned to SERVER_CPU. Then a
# fixed-rate run against a freshly started nsxdp (kxdpgun -Q, default 150,000 queries/s) for
# the share answered.
#
# Usage: bench/xdp-compare.sh [options]
#   --duration S     seconds kxdpgun runs per measurement (default 10)
#   --names N        names in the generated zone (default 100000)
#   --runs R         rounds; each round measures every server once (default 1)
#   --rate QPS       kxdpgun -Q of the throughput runs (default 1000000: as fast as it can)
#   --fixed QPS      kxdpgun -Q of the fixed-rate run against nsxdp (default 150000; 0: none)
#   --only LIST      comma-separated subset of nsxdp,knotd (default both)
#   --rrl RATE       response rate limiting on in both servers (nsxdp [rrl], knotd mod-rrl;
#                    slip 2) at RATE responses a second per bucket (a large RATE: the cost
#                    of RRL with nothing limited)
#   --signed MODE    signed zone, MODE nsec or nsec3: the gen-zone.py --dnssec zone signed
#                    with dnssec-signzone (lib.sh, bench_signed_zone; cached), every query
#                    with EDNS and DO=1 (kxdpgun's D flag), the signed mix of gen-queries.py
#                    (positive, DS, NXDOMAIN, NODATA, wildcard, referrals to secure and
#                    insecure delegations)
#   --sweep LIST     instead of the max and fixed runs: each server at each offered rate of
#                    LIST (queries/s, comma-separated, e.g. 100000,200000,400000,800000),
#                    and two charts (bench/plot.py, python3-matplotlib): replies/s against
#                    offered load for nsxdp and knotd, and nsxdp's service-time percentiles
#                    (its own histogram; knotd has none) against offered load
#   --charts DIR     where the sweep's SVG charts go (default bench/charts)
#   --no-build       do not run `cargo build --release`
#
# Environment:
#   NSXDP_BIN=PATH      nsxdp binary to measure (default target/release/nsxdp; implies no build)
#   SERVER_CPU=1        CPU of the server (taskset, and nsxdp --cores); CLIENT_CPU=0 for kxdpgun
#   NSXDP_BENCH_KEEP=1  keep the temporary directory (configs, logs, kxdpgun output)
#
# Needs root, python3, ip, ethtool, taskset, kdig, kxdpgun (knot-dnsutils) and knotd (knot);
# with --signed also dnssec-keygen and dnssec-signzone (bind9-utils).
# Addresses: 198.18.0.1 and .2 inside the two namespaces this script makes (named after its
# PID) and deletes on exit, with the veth pair and anything attached to it. Each server is
# stopped by its PID.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101          # fixed serial written by gen-zone.py
SEED=1
DURATION=10
N=100000
RUNS=1
RATE=1000000
FIXED=150000
ONLY=nsxdp,knotd
RRL=
SIGNED=
BUILD=1
SWEEP=
CHARTS=
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
QUERY_LINES=200000         # lines in the query file (kxdpgun loops over it)
NX_PERCENT=10              # share of NXDOMAIN queries
START_TIMEOUT_S=300        # per server start (nsxdp compiles, knotd loads the zone)
WARMUP_S=2                 # unmeasured kxdpgun run before each measurement
SRV_ADDR=198.18.0.1
CLI_ADDR=198.18.0.2

die() { echo "xdp-compare: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?}; shift ;;
        --names) N=${2:?}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        --fixed) FIXED=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        --rrl) RRL=${2:?}; shift ;;
        --signed) SIGNED=${2:?}; shift ;;
        --sweep) SWEEP=${2:?}; shift ;;
        --charts) CHARTS=${2:?}; shift ;;
        -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in DURATION N RUNS RATE; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
case "$FIXED" in ''|*[!0-9]*) die "--fixed must be a number" ;; esac
case "$RRL" in *[!0-9]*) die "--rrl must be a number" ;; esac
case "$SIGNED" in ''|nsec|nsec3) ;; *) die "--signed takes nsec or nsec3" ;; esac
case "$SWEEP" in *[!0-9,]*) die "--sweep takes rates like 100000,200000" ;; esac
CHARTS=${CHARTS:-$REPO/bench/charts}
PLOT_PYTHON=/usr/bin/python3    # Debian's, where python3-matplotlib installs
if [ -n "$SWEEP" ]; then
    "$PLOT_PYTHON" -c 'import matplotlib' 2>/dev/null || die "--sweep draws charts: apt-get install python3-matplotlib"
fi
[ "$DURATION" -le 600 ] || die "--duration at most 600"
[ "$RUNS" -le 20 ] || die "--runs at most 20"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, XDP)"
for c in python3 ip ethtool taskset kdig kxdpgun; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install -y iproute2 ethtool util-linux knot-dnsutils)"
done
case ",$ONLY," in *,knotd,*) command -v knotd >/dev/null || die "missing knotd (apt-get install -y knot)" ;; esac

bench_nsxdp
case ",$ONLY," in *,nsxdp,*) [ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP" ;; esac

TMP=$(mktemp -d /tmp/nsxdp-xdp-compare.XXXXXX)
NS_SRV=nsxb-$$-srv
NS_CLI=nsxb-$$-cli
IF_SRV=xbs$$
IF_CLI=xbc$$
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    # Deleting the namespaces deletes the veth pair and whatever XDP program is on it.
    ip netns del "$NS_SRV" 2>/dev/null || true
    ip netns del "$NS_CLI" 2>/dev/null || true
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- testbed ---
ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
ip link add "$IF_SRV" netns "$NS_SRV" type veth peer name "$IF_CLI" netns "$NS_CLI"
ip -n "$NS_SRV" addr add "$SRV_ADDR/24" dev "$IF_SRV"
ip -n "$NS_CLI" addr add "$CLI_ADDR/24" dev "$IF_CLI"
for ns in "$NS_SRV" "$NS_CLI"; do ip -n "$ns" link set lo up; done
ip -n "$NS_SRV" link set "$IF_SRV" up
ip -n "$NS_CLI" link set "$IF_CLI" up
# kdig's readiness checks go through the kernel, which leaves UDP checksums to the veth
# "hardware" unless told otherwise; nsxdp verifies them (kxdpgun computes its own).
ip netns exec "$NS_CLI" ethtool -K "$IF_CLI" tx off >/dev/null
ip netns exec "$NS_CLI" ping -c 1 -W 2 "$SRV_ADDR" >/dev/null || die "the testbed does not ping"
log "testbed: $NS_SRV/$IF_SRV ($SRV_ADDR) <-> $NS_CLI/$IF_CLI ($CLI_ADDR)"

# --- zone (cached like udp-compare.sh) and query file ---
if [ -n "$SIGNED" ]; then
    bench_signed_zone "$SIGNED" || die "cannot make the signed zone"
    python3 "$SCRIPT_DIR/gen-queries.py" "$ZONE_SRC" "$TMP/queries.txt" "$ORIGIN" "$QUERY_LINES" "$NX_PERCENT" \
        --signed-mix --format kxdpgun-do
else
    bench_zone
    python3 "$SCRIPT_DIR/gen-queries.py" "$ZONE" "$TMP/queries.txt" "$ORIGIN" "$QUERY_LINES" "$NX_PERCENT"
fi
cat "$ZONE" >/dev/null    # page cache warm for every server

# CPU seconds (user+system) used so far by process $1 and its threads.
cpu_s() {
    python3 - "$1" <<'EOF'
import os, sys
s = open("/proc/%s/stat" % sys.argv[1]).read()
f = s[s.rindex(")") + 2:].split()
print("%.2f" % ((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")))
EOF
}

# Waits until the server answers the SOA with the generator's serial, from the client side.
wait_answer() {
    local pid=$1 t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$START_TIMEOUT_S" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        case "$(ip netns exec "$NS_CLI" kdig @"$SRV_ADDR" "$ORIGIN" SOA +short +timeout=1 +retry=0 2>/dev/null || true)" in
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
    # Knot leaves its program behind when killed; nsxdp never does. Either way, nothing
    # stays on the interface for the next server.
    ip -n "$NS_SRV" link set dev "$IF_SRV" xdp off 2>/dev/null || true
}

# `ip netns exec` and `taskset` exec their command: $! is the server's PID.
start_nsxdp() {
    local d=$1
    mkdir -p "$d/data"
    local config=()
    if [ -n "$RRL" ]; then
        printf '[server]\ncontrol = "%s/control.sock"\n\n[rrl]\nrate = %s\nslip = 2\n' "$d" "$RRL" >"$d/nsxdp.toml"
        config=(--config "$d/nsxdp.toml")
    fi
    ip netns exec "$NS_SRV" taskset -c "$SERVER_CPU" "$NSXDP" serve "${config[@]}" --xdp "$IF_SRV" --queues 0 \
        --cores "$SERVER_CPU" --listen "$SRV_ADDR:53" --zone "$ZONE" --data-dir "$d/data" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

start_knotd() {
    local d=$1
    mkdir -p "$d"
    KNOT_ADDR=$SRV_ADDR KNOT_XDP=$IF_SRV KNOT_RRL=${RRL:+"$RRL 2"} "$SCRIPT_DIR/knot-conf.sh" "$d" 53 "$ORIGIN" "$ZONE" notice >"$d/knot.conf"
    ip netns exec "$NS_SRV" taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
}

# kxdpgun from the client namespace on CLIENT_CPU: $1 seconds at $2 queries/s, output to $3.
run_gun() {
    local secs=$1 rate=$2 out=$3
    ip netns exec "$NS_CLI" kxdpgun -t "$secs" -Q "$rate" -F "$CLIENT_CPU" -i "$TMP/queries.txt" \
        -I "$IF_CLI" "$SRV_ADDR" >"$out" 2>&1 || { cat "$out" >&2; die "kxdpgun failed"; }
}

# With --signed: how many DNSSEC records the server puts in three DO=1 answers (a positive
# one, an NXDOMAIN, a wildcard), so the table can be read knowing what was answered.
signed_probe() {
    local name=$1 q out=""
    for q in "ns1.$ORIGIN A" "nx-probe.grp0.$ORIGIN A" "w-probe.wild.$ORIGIN A"; do
        # shellcheck disable=SC2086
        out+="$q: $(ip netns exec "$NS_CLI" kdig @"$SRV_ADDR" $q +dnssec +bufsize=1232 +timeout=2 +retry=0 2>/dev/null |
            grep -cE '[[:space:]](RRSIG|NSEC|NSEC3)[[:space:]]' || true) RRSIG/NSEC/NSEC3; "
    done
    log "$name DO=1 probe: $out"
}

RESULTS=$TMP/results.txt
: >"$RESULTS"

# Appends "name run kind offered_qps replies_qps answered_pct cpu_pct" for kxdpgun output $4.
record() {
    local name=$1 run=$2 kind=$3 out=$4 cpu=$5
    python3 - "$name" "$run" "$kind" "$out" "$cpu" "$DURATION" >>"$RESULTS" <<'EOF'
import re, sys
name, run, kind, path, cpu, dur = sys.argv[1:7]
t = open(path).read()
q = re.search(r"total queries:\s+(\d+) \((\d+) pps\)", t)
r = re.search(r"total replies:\s+(\d+) \((\d+) pps\)", t)
if not q or not r:
    sys.exit("xdp-compare: cannot read kxdpgun output %s:\n%s" % (path, t))
sent, got = int(q.group(1)), int(r.group(1))
print(name, run, kind, q.group(2), r.group(2), "%.3f" % (100.0 * got / max(sent, 1)),
      "%.0f" % (100.0 * float(cpu) / float(dur)))
EOF
    log "$name run $run $kind: $(tail -n1 "$RESULTS")"
}

# One measurement: start server $1 (round $2), wait for it, warm up at $3 queries/s, measure
# at that rate, stop it; kind $4 (max or fixed) in the results. A fresh server for each
# measurement, so its counters at exit are those of this one load.
measure() {
    local name=$1 run=$2 rate=$3 kind=$4 d pid before after
    d=$TMP/$name-$run-$kind
    mkdir -p "$d"
    "start_$name" "$d"
    pid=$SERVER_PID
    if ! wait_answer "$pid"; then
        tail -n 20 "$d/server.log" >&2
        die "$name did not answer on $SRV_ADDR within ${START_TIMEOUT_S}s"
    fi
    log "$name (pid $pid, run $run, $kind) answers on $SRV_ADDR:53; affinity $(taskset -pc "$pid" | sed 's/.*: //')"
    [ -z "$SIGNED" ] || signed_probe "$name"
    run_gun "$WARMUP_S" "$rate" "$d/warmup.txt"
    sleep 0.5
    before=$(cpu_s "$pid")
    run_gun "$DURATION" "$rate" "$d/gun.txt"
    after=$(cpu_s "$pid")
    record "$name" "$run" "$kind" "$d/gun.txt" "$(python3 -c "print($after-$before)")"
    stop_server "$pid"
    if [ "$name" = nsxdp ]; then
        grep -E "XDP (queue|program xdp|service)" "$d/server.log" | sed 's/^/   /' >&2 || true
        # "XDP service time ns: p50=848 p90=1043 p99=1878 p99.9=4839 max=..." of this load.
        case "$kind" in sweep-*)
            grep -o 'XDP service time ns: .*' "$d/server.log" | tr ' ' '\n' | grep -E '^p(50|99|99\.9)=' |
                sed "s/=/ ${kind#sweep-} /" >>"$TMP/service.txt" || true ;;
        esac
    fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "zone $ZONE ($N names${SIGNED:+, signed $SIGNED, queries DO=1}); ${RRL:+RRL at $RRL/s; }$DURATION s per measurement; kxdpgun -Q $RATE on CPU $CLIENT_CPU; server on CPU $SERVER_CPU; load $LOAD_BEFORE"
IFS=, read -r -a SERVERS <<<"$ONLY"
IFS=, read -r -a RATES <<<"$SWEEP"
for run in $(seq "$RUNS"); do
    for s in "${SERVERS[@]}"; do
        case "$s" in nsxdp|knotd) ;; *) die "unknown server $s" ;; esac
        if [ -n "$SWEEP" ]; then
            for r in "${RATES[@]}"; do measure "$s" "$run" "$r" "sweep-$r"; done
        else
            measure "$s" "$run" "$RATE" max
        fi
    done
    if [ -z "$SWEEP" ] && [ "$FIXED" -gt 0 ]; then
        case ",$ONLY," in *,nsxdp,*) measure nsxdp "$run" "$FIXED" fixed ;; esac
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- table ---
python3 - "$RESULTS" "$DURATION" "$(knotd -V 2>/dev/null | sed 's/.*version //' || echo -)" "$(nproc)" \
    "$LOAD_BEFORE" "$LOAD_AFTER" "$FIXED" "$SIGNED" <<'EOF'
import sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
dur, kv, cores, load0, load1, fixed, signed = sys.argv[2:9]
print("xdp-compare: %s, %s cores, knotd %s, %s s per measurement, load average %s before, %s after%s"
      % (time.strftime("%Y-%m-%d %H:%M"), cores, kv, dur, load0, load1,
         ", signed zone (%s), queries with DO=1" % signed if signed else ""))
print("%-6s %-4s %-8s %10s %10s %9s %6s %11s" % ("server", "run", "load", "offered/s", "replies/s", "answered", "cpu %",
                                                "rep/cpu-s"))
for name, run, kind, off, rep, pct, cpu in rows:
    load = "max" if kind == "max" else "%s/s" % (kind[6:] if kind.startswith("sweep-") else fixed)
    per_cpu = "%.0f" % (float(rep) * 100 / float(cpu)) if float(cpu) > 0 else "-"
    print("%-6s %-4s %-8s %10s %10s %8s%% %6s %11s" % (name, run, load, off, rep, pct, cpu, per_cpu))
best = {}
for name, run, kind, off, rep, pct, cpu in rows:
    if kind == "max":
        best.setdefault(name, []).append(float(rep))
if "nsxdp" in best and "knotd" in best:
    n = sum(best["nsxdp"]) / len(best["nsxdp"])
    k = sum(best["knotd"]) / len(best["knotd"])
    print("replies/s, mean over runs: nsxdp %.0f, knotd %.0f, ratio nsxdp/knotd %.2f (target >= 2)" % (n, k, n / max(k, 1)))
    eff = {}
    for name, run, kind, off, rep, pct, cpu in rows:
        if kind == "max" and float(cpu) > 0:
            eff.setdefault(name, []).append(float(rep) * 100 / float(cpu))
    if "nsxdp" in eff and "knotd" in eff:
        n, k = sum(eff["nsxdp"]) / len(eff["nsxdp"]), sum(eff["knotd"]) / len(eff["knotd"])
        print("replies per server CPU-second, mean: nsxdp %.0f, knotd %.0f, ratio %.2f" % (n, k, n / max(k, 1)))
if signed:
    # Medians over the rounds (a shared machine is noisy), and the signed-zone target.
    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    rep, eff = {}, {}
    for name, run, kind, off, r, pct, cpu in rows:
        if kind == "max":
            rep.setdefault(name, []).append(float(r))
            if float(cpu) > 0:
                eff.setdefault(name, []).append(float(r) * 100 / float(cpu))
    print("medians over rounds: " + "; ".join(
        "%s %.0f replies/s, %.0f per CPU-s" % (n, med(rep[n]), med(eff.get(n, [float("nan")]))) for n in sorted(rep)))
    if "nsxdp" in eff and "knotd" in eff:
        print("median replies per CPU-s nsxdp/knotd: %.2f (target >= 2); replies/s: %.2f"
              % (med(eff["nsxdp"]) / med(eff["knotd"]), med(rep["nsxdp"]) / max(med(rep["knotd"]), 1)))
fx = [float(r[5]) for r in rows if r[0] == "nsxdp" and r[2] == "fixed"]
if fx:
    print("nsxdp at %s queries/s offered: %.3f%% answered (worst run; target >= 99.9%%)" % (fixed, min(fx)))
EOF

# --- charts of the sweep: medians over the rounds ---
if [ -n "$SWEEP" ]; then
    mkdir -p "$CHARTS"
    what="${SIGNED:+signed $SIGNED, DO=1, }$N names, one core each, $(date +%Y-%m-%d)"
    python3 - "$RESULTS" <<'EOF' | "$PLOT_PYTHON" "$SCRIPT_DIR/plot.py" lines "$CHARTS/xdp-replies-vs-offered.svg" \
        --title "AF_XDP: replies/s against offered load ($what)" --xlabel "offered queries/s (sent by kxdpgun)" \
        --ylabel "replies/s" --diagonal
import sys
v = {}
for l in open(sys.argv[1]):
    name, run, kind, off, rep, pct, cpu = l.split()
    if kind.startswith("sweep-"):
        v.setdefault((name, int(kind[6:])), []).append((float(off), float(rep)))
# x: what kxdpgun managed to send (at the top rates it falls short of what it was asked).
med = lambda xs: sorted(xs)[len(xs) // 2]
for (name, rate), pts in sorted(v.items()):
    print("%s %.0f %.0f" % ("knotd-XDP" if name == "knotd" else name, med([p[0] for p in pts]), med([p[1] for p in pts])))
EOF
    if [ -s "$TMP/service.txt" ]; then
        python3 - "$TMP/service.txt" <<'EOF' | "$PLOT_PYTHON" "$SCRIPT_DIR/plot.py" lines "$CHARTS/xdp-service-time.svg" \
            --title "nsxdp AF_XDP service time against offered load ($what)" --xlabel "offered queries/s" \
            --ylabel "ns from RX to TX ring"
import sys
v = {}
for l in open(sys.argv[1]):
    p, rate, ns = l.split()
    v.setdefault((p, int(rate)), []).append(float(ns))
for (p, rate), ns in sorted(v.items()):
    ns.sort()
    print("nsxdp-%s %d %.0f" % (p, rate, ns[len(ns) // 2]))
EOF
    fi
    log "charts in $CHARTS"
fi
