#!/usr/bin/env bash
# AXFR out over TLS (XoT, RFC 9103) against plain TCP, from one nsxdp primary in one run:
# the same zone, the same server, the same clients; only the transport differs.
#
# Usage: bench/xot-compare.sh [options]
#   --names N      names in the generated zone (default 1000000: about 2.5 M RRs)
#   --runs R       transfers over each transport, per client (default 2)
#   --no-named     only kdig as the client
#   --quick        N = 20000, R = 2: a smoke run of a few seconds
#   --no-build     do not run `cargo build --release`
#
# Environment:
#   NSXDP_BIN=PATH       nsxdp binary to measure (default target/release/nsxdp; implies no build)
#   PRIMARY_CPU=1        CPU the primary is pinned to (taskset); SECONDARY_CPU=0 for the
#                        clients; NSXDP_BENCH_NOPIN=1 pins nothing
#   NSXDP_BENCH_KEEP=1   keep the temporary directory (configs, certificates, logs)
#
# Clients, alternating TCP and TLS (the order flips every run):
#   * kdig AXFR (+tcp, or +tls checked against the test CA), output piped to `tail`, under
#     /usr/bin/time: wall seconds, kdig's CPU, and the primary's CPU (/proc/PID/stat);
#   * BIND's named (9.18) as a secondary started empty for each transfer (`primaries { ...
#     tls NAME; }` with the CA for TLS): the seconds of its "Transfer completed" log line,
#     and the primary's CPU.
# TSIG hmac-sha256 on every transfer. The certificate: ECDSA P-256, made by openssl.
# Target (issue #16): XoT no more than 1.3x the plain-TCP time.
#
# Needs python3, openssl, kdig, /usr/bin/time, named (unless --no-named), taskset (unless
# NSXDP_BENCH_NOPIN=1). Only 127.0.0.1 is used. Every process the script starts is stopped
# by its PID at exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ORIGIN=bench.test
SERIAL=2026010101          # fixed serial written by gen-zone.py
SEED=1
N=1000000
RUNS=2
NAMED=1
BUILD=1
START_TIMEOUT_S=600
XFR_TIMEOUT_S=600
PRIMARY_CPU=${PRIMARY_CPU:-1}
SECONDARY_CPU=${SECONDARY_CPU:-0}
UTIL=$SCRIPT_DIR/xfr-util.py

die() { echo "xot-compare: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --names) N=${2:?}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --no-named) NAMED=0 ;;
        --quick) N=20000; RUNS=2 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
for v in N RUNS; do
    case "${!v}" in ''|*[!0-9]*|0) die "$v must be a positive integer" ;; esac
done
[ "$RUNS" -le 20 ] || die "at most 20 runs"
for c in python3 openssl kdig; do
    command -v "$c" >/dev/null || die "missing $c"
done
[ "$NAMED" = 0 ] || command -v named >/dev/null || die "missing named (apt-get install -y bind9), or --no-named"
[ -x /usr/bin/time ] || die "missing /usr/bin/time (apt-get install -y time)"
pin() {
    local cpu=$1; shift
    if [ "${NSXDP_BENCH_NOPIN:-0}" = 1 ]; then exec "$@"; else exec taskset -c "$cpu" "$@"; fi
}
[ "${NSXDP_BENCH_NOPIN:-0}" = 1 ] || command -v taskset >/dev/null || die "missing taskset"

bench_nsxdp
[ -x "$NSXDP" ] || die "no nsxdp binary at $NSXDP"

TMP=$(mktemp -d /tmp/nsxdp-xot-compare.XXXXXX)
PIDS=()
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [ "${NSXDP_BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_zone
ZONE_RRS=$(grep -c "$(printf '\tIN\t')" "$ZONE")
cat "$ZONE" >/dev/null

SECRET=$(head -c 32 /dev/urandom | base64)
KEY="hmac-sha256:xfr:$SECRET"
free_port() { python3 "$SCRIPT_DIR/free-port.py"; }
cpu_s() { python3 "$UTIL" cpu "$1"; }
now() { date +%s.%N; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
start() {  # start NAME CPU CMD...: sets STARTED_PID, logs to $TMP/NAME.log
    local name=$1 cpu=$2; shift 2
    (pin "$cpu" "$@") >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# --- a CA and the primary's certificate (for 127.0.0.1 and primary.test) ---
P=$TMP/pki
mkdir -p "$P"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$P/ca.key" -out "$P/ca.pem" -days 2 -subj "/CN=xot bench CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$P/key.pem" -out "$P/req.csr" -subj "/CN=primary.test" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:primary.test\nbasicConstraints=CA:FALSE\n' >"$P/ext.cnf"
openssl x509 -req -in "$P/req.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
    -extfile "$P/ext.cnf" -out "$P/cert.pem" 2>/dev/null

# --- the primary: plain TCP and TLS ---
NP=$(free_port)
TP=$(free_port)
mkdir -p "$TMP/nsxdp/data"
cat >"$TMP/nsxdp/nsxdp.toml" <<EOF
[server]
listen = ["127.0.0.1:$NP"]
tls-listen = ["127.0.0.1:$TP"]
tls-certificate = "$P/cert.pem"
tls-key = "$P/key.pem"
data-dir = "data"
control = "data/ctl.sock"
# A reader slowed down by a busy machine (kdig printing 2.5 M records) must not be dropped.
tcp-idle-timeout = 120

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
notify-ns = false
EOF
log "nsxdp primary: TCP 127.0.0.1:$NP, TLS 127.0.0.1:$TP (compiles the zone at start)"
start nsxdp "$PRIMARY_CPU" "$NSXDP" serve --cores 1 --config "$TMP/nsxdp/nsxdp.toml"
PRIMARY=$STARTED_PID
python3 "$UTIL" soa "$NP" "$ORIGIN" --want "$SERIAL" --poll 0.05 --limit "$START_TIMEOUT_S" --pid "$PRIMARY" >/dev/null \
    || { tail -n 20 "$TMP/nsxdp.log" >&2; die "the primary did not serve the zone"; }

RESULTS=$TMP/results.txt
: >"$RESULTS"

# --- kdig ---
kdig_axfr() {  # kdig_axfr tcp|tls OUT_PREFIX
    local how=(+tcp) port=$NP
    if [ "$1" = tls ]; then how=(+tls "+tls-ca=$P/ca.pem" +tls-hostname=primary.test); port=$TP; fi
    (pin "$SECONDARY_CPU" /usr/bin/time -f '%e %U %S' -o "$2.time" \
        kdig @127.0.0.1 -p "$port" -y "$KEY" "${how[@]}" +time=600 AXFR "$ORIGIN") | tail -n 5 >"$2.out"
}
for run in $(seq "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then order="tcp tls"; else order="tls tcp"; fi
    for t in $order; do
        c0=$(cpu_s "$PRIMARY"); la=$(loadavg)
        kdig_axfr "$t" "$TMP/kdig-$t-$run"
        c1=$(cpu_s "$PRIMARY")
        read -r wall _ _ < <(tail -n 1 "$TMP/kdig-$t-$run.time")
        recv=$(sed -n 's/^;; Received \([0-9]*\) B (\([0-9]*\) messages, \([0-9]*\) records).*/\1 \2 \3/p' "$TMP/kdig-$t-$run.out")
        [ -n "$recv" ] || { cat "$TMP/kdig-$t-$run.out" >&2; die "kdig AXFR over $t failed"; }
        cpu=$(python3 -c "print('%.3f' % ($c1 - $c0))")
        echo "kdig $t $run $wall $cpu $recv $la" >>"$RESULTS"
        log "kdig over $t, run $run: ${wall}s, primary CPU ${cpu}s, received $recv (bytes messages records)"
    done
done

# --- named: a fresh secondary per transfer ---
named_axfr() {  # named_axfr tcp|tls RUN: prints "SECONDS"
    local t=$1 run=$2 d=$TMP/named-$1-$2 port tlsdef="" via=""
    mkdir -p "$d"
    port=$(free_port)
    if [ "$t" = tls ]; then
        tlsdef="tls \"to-nsxdp\" { ca-file \"$P/ca.pem\"; remote-hostname \"primary.test\"; };"
        via="port $TP key xfr tls to-nsxdp"
    else
        via="port $NP key xfr"
    fi
    cat >"$d/named.conf" <<EOF
options {
  directory "$d";
  pid-file "$d/named.pid";
  session-keyfile "$d/session.key";
  listen-on port $port { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
key "xfr" { algorithm hmac-sha256; secret "$SECRET"; };
$tlsdef
zone "$ORIGIN" {
  type secondary;
  primaries { 127.0.0.1 $via; };
  file "secondary.db";
};
EOF
    start "named-$t-$run" "$SECONDARY_CPU" named -g -n 1 -c "$d/named.conf"
    local pid=$STARTED_PID t0
    t0=$(now)
    while ! grep -q "Transfer completed" "$TMP/named-$t-$run.log"; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$TMP/named-$t-$run.log" >&2; die "named ($t) exited"; }
        python3 -c "import sys; sys.exit(0 if $(now) - $t0 < $XFR_TIMEOUT_S else 1)" \
            || { tail -n 20 "$TMP/named-$t-$run.log" >&2; die "named ($t) did not finish the transfer"; }
        sleep 0.1
    done
    stop_pid "$pid"
    sed -n 's/.*Transfer completed: \([0-9]*\) messages, \([0-9]*\) records, \([0-9]*\) bytes, \([0-9.]*\) secs.*/\4 \1 \2 \3/p' \
        "$TMP/named-$t-$run.log" | head -n 1
}
if [ "$NAMED" = 1 ]; then
    for run in $(seq "$RUNS"); do
        if [ $((run % 2)) = 1 ]; then order="tcp tls"; else order="tls tcp"; fi
        for t in $order; do
            c0=$(cpu_s "$PRIMARY"); la=$(loadavg)
            line=$(named_axfr "$t" "$run")
            c1=$(cpu_s "$PRIMARY")
            [ -n "$line" ] || die "no 'Transfer completed' line from named ($t)"
            read -r secs msgs rrs bytes <<<"$line"
            cpu=$(python3 -c "print('%.3f' % ($c1 - $c0))")
            echo "named $t $run $secs $cpu $bytes $msgs $rrs $la" >>"$RESULTS"
            log "named over $t, run $run: ${secs}s, primary CPU ${cpu}s, $msgs messages, $rrs records, $bytes bytes"
        done
    done
fi
grep -h "over TLS" "$TMP/nsxdp.log" | tail -n 2 >&2 || true

python3 - "$RESULTS" "$N" "$ZONE_RRS" "$(nproc)" "$(named -v 2>/dev/null || true)" <<'EOF'
import statistics, sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n, rrs, cores, named = sys.argv[2:6]
print("xot-compare: N=%s names, %s RRs; %s, %s cores; %s; TSIG hmac-sha256"
      % (n, rrs, time.strftime("%Y-%m-%d %H:%M"), cores, named or "no named"))
fmt = "%-6s %-4s %4s %9s %8s %11s %9s %9s %6s"
print(fmt % ("client", "over", "run", "s", "CPU s", "bytes", "messages", "records", "load"))
for r in rows:
    print(fmt % tuple(r))
verdicts = []
for client in ("kdig", "named"):
    def med(t, col):
        v = [float(r[col]) for r in rows if r[0] == client and r[1] == t]
        return statistics.median(v) if v else None
    tcp, tls = med("tcp", 3), med("tls", 3)
    if tcp is None or tls is None:
        continue
    ctcp, ctls = med("tcp", 4), med("tls", 4)
    ratio = tls / tcp
    verdicts.append(ratio <= 1.3)
    print("%-6s median: TCP %.2f s, TLS %.2f s: %.2fx (target <= 1.3x); primary CPU %.2f -> %.2f s"
          % (client, tcp, tls, ratio, ctcp, ctls))
print("target: %s" % ("PASS" if verdicts and all(verdicts) else "MISS"))
EOF
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
