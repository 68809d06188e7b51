#!/usr/bin/env bash
# Prints the knotd configuration the benchmarks use: one zone, one worker of each kind,
# loaded whole from the zone file with no journal and no semantic checks.
# Usage: knot-conf.sh DIR PORT ORIGIN ZONEFILE [LOGLEVEL]   (DIR gets run/, db/, storage/)
# Environment: KNOT_ADDR (listen address, default 127.0.0.1); KNOT_XDP=IFACE adds an xdp
# section answering UDP on IFACE@PORT through AF_XDP (testbed.md); KNOT_RRL="RATE SLIP"
# turns mod-rrl on for every zone (rate-limit RATE, slip SLIP); KNOT_COOKIES=1 puts
# mod-cookies before it (a valid server cookie passes RRL).
set -euo pipefail
d=$1 port=$2 origin=$3 zone=$4 level=${5:-notice}
addr=${KNOT_ADDR:-127.0.0.1}
mkdir -p "$d/run" "$d/db" "$d/storage"
cat <<CONF
server:
    rundir: "$d/run"
    listen: $addr@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: stderr
    any: $level

database:
    storage: "$d/db"
CONF
if [ -n "${KNOT_RRL:-}" ]; then
    read -r rrl_rate rrl_slip <<<"$KNOT_RRL"
    cat <<CONF

mod-rrl:
  - id: default
    rate-limit: $rrl_rate
    slip: $rrl_slip
CONF
fi
cat <<CONF

template:
  - id: default
    storage: "$d/storage"
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
CONF
if [ -n "${KNOT_COOKIES:-}" ]; then
    echo "    global-module: mod-cookies"
fi
if [ -n "${KNOT_RRL:-}" ]; then
    echo "    global-module: mod-rrl/default"
fi
cat <<CONF

zone:
  - domain: $origin
    file: "$zone"
CONF
if [ -n "${KNOT_XDP:-}" ]; then
    cat <<CONF

xdp:
    listen: $KNOT_XDP@$port
    udp: on
CONF
fi
