#!/usr/bin/env bash
# Zone-data benchmark: master file -> snapshot -> mmap (nsxdp) versus
# master file -> answering (Knot DNS), measured one after the other in one run.
#
# Usage: bench/zone-load.sh [--quick] [--no-build] [--skip-nsxdp] [--skip-knot] [N]
#   N             number of generated names (default 1000000)
#   --quick       smoke run with N=20000
#   --no-build    do not run `cargo build --release` first
#   --skip-nsxdp  measure knotd only
#   --skip-knot   measure nsxdp only
#
# Environment:
#   NSXDP_BENCH_SEED=S        generator seed (default 1)
#   NSXDP_BENCH_STAT_RUNS=K   `nsxdp stat` runs, median reported (default 3)
#   NSXDP_BENCH_KNOT_RUNS=K   knotd start-ups, median reported (default 3)
#   NSXDP_BENCH_KEEP=1        keep the temporary directory
#
# Uses bash, coreutils, python3 (stdlib only), /usr/bin/time, knotd, kdig.
# All network traffic goes to 127.0.0.1.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101          # fixed serial written by gen-zone.py
SEED=${NSXDP_BENCH_SEED:-1}
STAT_RUNS=${NSXDP_BENCH_STAT_RUNS:-3}
KNOT_RUNS=${NSXDP_BENCH_KNOT_RUNS:-3}
N=1000000
BUILD=1
DO_NSXDP=1
DO_KNOT=1
KNOT_TIMEOUT_S=600         # per knotd start-up
POLL_S=0.05

die() { echo "zone-load: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) N=20000 ;;
        --no-build) BUILD=0 ;;
        --skip-nsxdp) DO_NSXDP=0 ;;
        --skip-knot) DO_KNOT=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        ''|*[!0-9]*) die "unknown argument: $1 (try --help)" ;;
        *) N=$1 ;;
    esac
    shift
done
[ "$N" -ge 1 ] || die "N must be >= 1"
[ "$STAT_RUNS" -ge 1 ] && [ "$KNOT_RUNS" -ge 1 ] || die "run counts must be >= 1"

command -v python3 >/dev/null || die "missing python3"
[ -x /usr/bin/time ] || die "missing /usr/bin/time (apt-get install -y time)"
if [ "$DO_KNOT" = 1 ]; then
    command -v knotd >/dev/null || die "missing knotd (apt-get install -y knot)"
    command -v kdig >/dev/null || die "missing kdig (apt-get install -y knot-dnsutils)"
fi

TMP=$(mktemp -d /tmp/nsxdp-zone-load.XXXXXX)
KNOT_PID=
cleanup() {
    if [ -n "$KNOT_PID" ] && kill -0 "$KNOT_PID" 2>/dev/null; then
        kill -TERM "$KNOT_PID" 2>/dev/null || true
        wait "$KNOT_PID" 2>/dev/null || true
    fi
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then
        echo "zone-load: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
py() { python3 -c "$@"; }
fsub() { py 'import sys; print("%.3f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$1" "$2"; }
# fdiv A B -> A/B, or n/a when either side is missing
fdiv() { py 'import sys
try:
    print("%.4f" % (float(sys.argv[1]) / float(sys.argv[2])))
except (ValueError, ZeroDivisionError):
    print("n/a")' "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
join() { local IFS=,; echo "$*"; }

# ---------------------------------------------------------------- build
NSXDP=$REPO/target/release/nsxdp
if [ "$DO_NSXDP" = 1 ]; then
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release (in $REPO)"
        (cd "$REPO" && cargo build --release) >&2 || die "cargo build failed"
    fi
    [ -x "$NSXDP" ] || die "missing $NSXDP"
fi

# ---------------------------------------------------------------- zone
# The generated zone is cached as /tmp/nsxdp-bench-zone-N.zone; its first line
# names the sha256 of gen-zone.py, N and the seed, so any change regenerates.
bench_zone
ZONE_BYTES=$(stat -c %s "$ZONE")
# Every RR line written by gen-zone.py has "<TAB>IN<TAB>"; SOA continuation lines do not.
ZONE_RRS=$(grep -c "$(printf '\tIN\t')" "$ZONE")
log "zone: $ZONE_BYTES bytes, $ZONE_RRS RRs"
cat "$ZONE" >/dev/null    # same (warm) page cache for both servers
LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
if py 'import os, sys; sys.exit(0 if os.getloadavg()[0] > 0.5 * os.cpu_count() else 1)'; then
    log "WARNING: load average $LOADAVG0 on $(nproc) cores: the machine is not idle, figures will be noisy"
fi

# ---------------------------------------------------------------- nsxdp
C_WALL=n/a; C_RSS=n/a; C_CPU=n/a; SNAP_BYTES=n/a; LOAD_MS=n/a; STAT_RSS=n/a; STAT_ALL=n/a
if [ "$DO_NSXDP" = 1 ]; then
    SNAP=$TMP/Z.snap
    log "nsxdp compile --origin $ORIGIN $ZONE -o $SNAP"
    if ! /usr/bin/time -f '%e %M %U %S' -o "$TMP/compile.time" \
        "$NSXDP" compile --origin "$ORIGIN" "$ZONE" -o "$SNAP" >"$TMP/compile.out" 2>&1; then
        tail -n 20 "$TMP/compile.out" >&2
        tail -n 2 "$TMP/compile.time" >&2 || true
        die "nsxdp compile failed"
    fi
    read -r C_WALL C_RSS c_user c_sys < <(tail -n1 "$TMP/compile.time")
    C_CPU=$(py 'import sys; print("%.2f" % (float(sys.argv[1]) + float(sys.argv[2])))' "$c_user" "$c_sys")
    [ -s "$SNAP" ] || die "nsxdp compile wrote no snapshot"
    SNAP_BYTES=$(stat -c %s "$SNAP")
    sed 's/^/compile: /' "$TMP/compile.out" | tail -n 20 >&2
    log "compile: ${C_WALL}s wall, ${C_CPU}s CPU, max RSS ${C_RSS} KiB, snapshot $SNAP_BYTES bytes"

    LOADS=(); RSSES=()
    for i in $(seq 1 "$STAT_RUNS"); do
        if ! /usr/bin/time -f '%e %M' -o "$TMP/stat.time" \
            "$NSXDP" stat "$SNAP" >"$TMP/stat.$i.out" 2>"$TMP/stat.$i.err"; then
            cat "$TMP/stat.$i.out" "$TMP/stat.$i.err" >&2
            tail -n 2 "$TMP/stat.time" >&2 || true
            die "nsxdp stat failed"
        fi
        l=$(sed -n 's/^load_ms[=:] *\([0-9.]*\).*/\1/p' "$TMP/stat.$i.out" | head -n1)
        r=$(sed -n 's/^rss_kib[=:] *\([0-9]*\).*/\1/p' "$TMP/stat.$i.out" | head -n1)
        read -r s_wall s_rss < <(tail -n1 "$TMP/stat.time")
        [ -n "$l" ] || { cat "$TMP/stat.$i.out" "$TMP/stat.$i.err" >&2; die "no load_ms= in nsxdp stat output"; }
        log "stat run $i: load_ms=$l rss_kib=${r:-?} (whole process: ${s_wall}s wall, max RSS ${s_rss} KiB)"
        LOADS+=("$l"); RSSES+=("${r:-$s_rss}")
    done
    LOAD_MS=$(median "${LOADS[@]}")
    STAT_RSS=$(median "${RSSES[@]}")
    STAT_ALL=$(join "${LOADS[@]}")
    echo "--- nsxdp stat output (run $STAT_RUNS) ---" >&2
    cat "$TMP/stat.$STAT_RUNS.out" >&2
    echo "---" >&2
fi

# ---------------------------------------------------------------- knotd
K_ANSWER_S=n/a; K_RSS=n/a; K_HWM=n/a; K_CPU=n/a; K_VERSION=n/a; K_ALL=n/a
CLK_TCK=$(getconf CLK_TCK)
# cpu_s PID -> user+sys CPU seconds so far (all threads)
cpu_s() {
    py 'import sys
f = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
print("%.2f" % ((int(f[11]) + int(f[12])) / float(sys.argv[2])))' "$1" "$CLK_TCK"
}

free_port() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/free-port.py"
}

# Waits until 127.0.0.1@PORT answers ORIGIN/SOA authoritatively (NOERROR, SOA
# in the answer section) and prints the wall-clock time of that answer.  One
# long-lived python3 process sends a query every POLL_S s and waits at most
# POLL_S s for each; kdig is used afterwards to check the answer.  (kdig's
# smallest timeout is 1 s, and a query that reaches knotd while it is still
# starting can go unanswered, which added about a second to each measurement.)
cat >"$TMP/soa-poll.py" <<'EOF'
import os, random, socket, struct, sys, time
port, origin, poll, limit, pid = (int(sys.argv[1]), sys.argv[2], float(sys.argv[3]),
                                  float(sys.argv[4]), int(sys.argv[5]))
qname = b"".join(bytes([len(l)]) + l.encode() for l in origin.strip(".").split(".")) + b"\0"

def skip_name(m, o):
    while True:
        c = m[o]
        if c == 0:
            return o + 1
        if c & 0xC0 == 0xC0:
            return o + 2
        o += 1 + c

def soa_answer(m, qid):
    if len(m) < 12:
        return False
    rid, flags, qd, an = struct.unpack("!HHHH", m[:8])
    if rid != qid or not flags & 0x8000 or flags & 0x000F or an < 1:
        return False
    o = 12
    for _ in range(qd):
        o = skip_name(m, o) + 4
    o = skip_name(m, o)
    return struct.unpack("!H", m[o:o + 2])[0] == 6

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
s.settimeout(poll)
end = time.monotonic() + limit
while time.monotonic() < end:
    if not os.path.exists("/proc/%d" % pid):
        sys.exit(2)
    qid = random.randrange(65536)
    try:
        s.send(struct.pack("!6H", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", 6, 1))
        t_end = time.monotonic() + poll
        while time.monotonic() < t_end:
            if soa_answer(s.recv(4096), qid):
                print("%.6f" % time.time())
                sys.exit(0)
    except socket.timeout:
        continue
    except (OSError, IndexError, struct.error):  # ICMP unreachable before bind, junk
        time.sleep(poll)
sys.exit(1)
EOF

# knot_once RUN -> sets KO_ANSWER_S KO_RSS KO_HWM KO_CPU
knot_once() {
    local run=$1 kd=$TMP/knot.$1 port t0 t1 ans
    port=$(free_port)
    mkdir -p "$kd"
    "$(dirname "${BASH_SOURCE[0]}")/knot-conf.sh" "$kd" "$port" "$ORIGIN" "$ZONE" info >"$kd/knot.conf"
    log "knotd run $run: 127.0.0.1@$port"
    t0=$(now)
    knotd -c "$kd/knot.conf" 2>"$kd/knotd.log" &
    KNOT_PID=$!
    if t1=$(python3 "$TMP/soa-poll.py" "$port" "$ORIGIN" "$POLL_S" "$KNOT_TIMEOUT_S" "$KNOT_PID"); then
        KO_ANSWER_S=$(fsub "$t1" "$t0")
        KO_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$KNOT_PID/status")
        KO_HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$KNOT_PID/status")
        KO_CPU=$(cpu_s "$KNOT_PID")
        ans=$(kdig @127.0.0.1 -p "$port" "$ORIGIN" SOA +short +timeout=1 +retry=0 2>&1 || true)
        log "knotd run $run: answered after ${KO_ANSWER_S}s (${KO_CPU}s CPU), VmRSS ${KO_RSS} KiB, VmHWM ${KO_HWM} KiB; kdig: $ans"
        case "$ans" in
            *" $SERIAL "*) ;;
            *) die "kdig did not return the expected SOA (serial $SERIAL)" ;;
        esac
    else
        tail -n 20 "$kd/knotd.log" >&2
        die "knotd did not answer within ${KNOT_TIMEOUT_S}s (or exited)"
    fi
    kill -TERM "$KNOT_PID"
    wait "$KNOT_PID" 2>/dev/null || true
    KNOT_PID=
    grep -E 'zone file parsed|loaded,' "$kd/knotd.log" | sed "s/^/knotd run $run: /" >&2 || true
    rm -rf "$kd"
}

if [ "$DO_KNOT" = 1 ]; then
    K_VERSION=$(knotd --version | sed -n 's/.*version \([^ ]*\).*/\1/p')
    K_RUNS_S=(); K_RSSES=(); K_HWMS=(); K_CPUS=()
    for i in $(seq 1 "$KNOT_RUNS"); do
        knot_once "$i"
        K_RUNS_S+=("$KO_ANSWER_S"); K_RSSES+=("$KO_RSS"); K_HWMS+=("$KO_HWM"); K_CPUS+=("$KO_CPU")
    done
    K_ANSWER_S=$(median "${K_RUNS_S[@]}")
    K_RSS=$(median "${K_RSSES[@]}")
    K_HWM=$(median "${K_HWMS[@]}")
    K_CPU=$(median "${K_CPUS[@]}")
    K_ALL=$(join "${K_RUNS_S[@]}")
fi

# ---------------------------------------------------------------- report
verdict() {  # VALUE LIMIT -> PASS if VALUE <= LIMIT
    py 'import sys
try:
    print("PASS" if float(sys.argv[1]) <= float(sys.argv[2]) else "MISS")
except ValueError:
    print("n/a")' "$1" "$2"
}
K_ANSWER_MS=n/a
[ "$K_ANSWER_S" = n/a ] || K_ANSWER_MS=$(py "print('%.1f' % ($K_ANSWER_S * 1000.0))")
R_LOAD=$(fdiv "$LOAD_MS" "$K_ANSWER_MS")
R_COMPILE=$(fdiv "$C_WALL" "$K_ANSWER_S")
R_SIZE=$(fdiv "$SNAP_BYTES" "$ZONE_BYTES")
MiB() { py 'import sys
try:
    print("%.1f" % (float(sys.argv[1]) / 1024))
except ValueError:
    print("n/a")' "$1"; }

echo
echo "zone-load: N=$N names, $ZONE_RRS RRs, zone file $ZONE_BYTES bytes;" \
     "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, knotd $K_VERSION"
fmt='%-38s %12s %12s %8s %-8s %s\n'
printf "$fmt" metric nsxdp knotd ratio target result
printf "$fmt" "load ms (nsxdp stat / knotd answer)" "$LOAD_MS" "$K_ANSWER_MS" "$R_LOAD" "<= 0.05" "$(verdict "$R_LOAD" 0.05)"
printf "$fmt" "compile s (nsxdp compile / knotd ans.)" "$C_WALL" "$K_ANSWER_S" "$R_COMPILE" "<= 1" "$(verdict "$R_COMPILE" 1)"
printf "$fmt" "bytes (snapshot / zone file)" "$SNAP_BYTES" "$ZONE_BYTES" "$R_SIZE" "<= 2" "$(verdict "$R_SIZE" 2)"
printf "$fmt" "CPU s (compile / knotd until answer)" "$C_CPU" "$K_CPU" "$(fdiv "$C_CPU" "$K_CPU")" "-" "info"
printf "$fmt" "RSS MiB (stat rss_kib / knotd VmRSS)" "$(MiB "$STAT_RSS")" "$(MiB "$K_RSS")" "$(fdiv "$STAT_RSS" "$K_RSS")" "-" "info"
printf "$fmt" "peak MiB (compile maxRSS / knotd HWM)" "$(MiB "$C_RSS")" "$(MiB "$K_HWM")" "$(fdiv "$C_RSS" "$K_HWM")" "-" "info"
echo "loadavg before: $LOADAVG0; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: nsxdp stat load_ms = $STAT_ALL (median of $STAT_RUNS); knotd answer s = $K_ALL (median of $KNOT_RUNS)"
