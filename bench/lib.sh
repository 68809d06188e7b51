# Pieces the bench scripts share. Sourced after a script has set SCRIPT_DIR and REPO and
# defined log(); the variables named below are the script's own.

# Sets NSXDP: $NSXDP_BIN when given, else target/release/nsxdp, built first unless BUILD=0.
bench_nsxdp() {
    if [ -n "${NSXDP_BIN:-}" ]; then
        NSXDP=$NSXDP_BIN
    else
        NSXDP=$REPO/target/release/nsxdp
        if [ "${BUILD:-1}" = 1 ]; then
            log "cargo build --release"
            (cd "$REPO" && cargo build --release 2>&1 | tail -n 1) >&2
        fi
    fi
}

# Sets ZONE: the gen-zone.py zone of N names (SEED, ORIGIN), cached as
# /tmp/nsxdp-bench-zone-N.zone (-sSEED before .zone for other seeds). Its first line names
# the sha256 of gen-zone.py, N, the seed and the origin, so any change regenerates it.
bench_zone() {
    local gen=$SCRIPT_DIR/gen-zone.py want
    ZONE=/tmp/nsxdp-bench-zone-$N.zone
    [ "$SEED" = 1 ] || ZONE=/tmp/nsxdp-bench-zone-$N-s$SEED.zone
    want="; gen-zone.py sha256=$(sha256sum "$gen" | cut -d' ' -f1) names=$N seed=$SEED origin=$ORIGIN"
    if [ -f "$ZONE" ] && [ "$(head -n1 "$ZONE")" = "$want" ]; then
        log "reusing cached zone $ZONE"
    else
        log "generating $ZONE (N=$N seed=$SEED)"
        python3 "$gen" --names "$N" --seed "$SEED" "$ORIGIN" "$ZONE.tmp.$$" >&2
        mv -f "$ZONE.tmp.$$" "$ZONE"
    fi
}

# Signed-zone mode of the query benchmarks (--signed nsec|nsec3). Sets ZONE_SRC to the
# `gen-zone.py --dnssec` zone of N names (cached as /tmp/nsxdp-bench-zone-N-dnssec.zone,
# like bench_zone) and ZONE to that zone signed with dnssec-signzone (bind9-utils):
# ECDSAP256SHA256, a KSK and a ZSK made by dnssec-keygen in a temporary directory;
# signatures valid 2025-01-01 to 2055-01-01; the SOA serial kept; for nsec3 salt
# SIGNED_NSEC3_SALT and SIGNED_NSEC3_ITER extra iterations (no opt-out). The signed zone is
# cached as /tmp/nsxdp-bench-zone-N-MODE.signed.zone; its first line names the source
# zone's first line and the signing parameters, so a new generator or other parameters
# sign again (new keys each time: the signatures change, the answers' shapes do not).
SIGNED_NSEC3_SALT=b3e2c1d0a9f8e7d6
SIGNED_NSEC3_ITER=5
bench_signed_zone() {
    local mode=$1 gen=$SCRIPT_DIR/gen-zone.py want src_head params signed keys nsec3=()
    case "$mode" in
        nsec) ;;
        nsec3) nsec3=(-3 "$SIGNED_NSEC3_SALT" -H "$SIGNED_NSEC3_ITER") ;;
        *) echo "bench_signed_zone: mode must be nsec or nsec3, not '$mode'" >&2; return 1 ;;
    esac
    for c in dnssec-keygen dnssec-signzone; do
        command -v "$c" >/dev/null || { echo "missing $c (apt-get install -y bind9-utils)" >&2; return 1; }
    done
    ZONE_SRC=/tmp/nsxdp-bench-zone-$N-dnssec.zone
    [ "$SEED" = 1 ] || ZONE_SRC=/tmp/nsxdp-bench-zone-$N-s$SEED-dnssec.zone
    want="; gen-zone.py sha256=$(sha256sum "$gen" | cut -d' ' -f1) names=$N seed=$SEED origin=$ORIGIN dnssec"
    if [ -f "$ZONE_SRC" ] && [ "$(head -n1 "$ZONE_SRC")" = "$want" ]; then
        log "reusing cached zone $ZONE_SRC"
    else
        log "generating $ZONE_SRC (N=$N seed=$SEED, --dnssec)"
        python3 "$gen" --names "$N" --seed "$SEED" --dnssec "$ORIGIN" "$ZONE_SRC.tmp.$$" >&2
        mv -f "$ZONE_SRC.tmp.$$" "$ZONE_SRC"
    fi
    src_head=$(head -n1 "$ZONE_SRC")
    params="alg=ECDSAP256SHA256 validity=20250101000000-20550101000000 ${nsec3[*]:-nsec}"
    signed=${ZONE_SRC%-dnssec.zone}-$mode.signed.zone
    want="; signed: $params; from: ${src_head#; }"
    if [ -f "$signed" ] && [ "$(head -n1 "$signed")" = "$want" ]; then
        log "reusing cached signed zone $signed"
    else
        log "signing $ZONE_SRC ($mode) into $signed"
        keys=$(mktemp -d /tmp/nsxdp-bench-keys.XXXXXX)
        dnssec-keygen -q -K "$keys" -a ECDSAP256SHA256 -f KSK "$ORIGIN" >/dev/null
        dnssec-keygen -q -K "$keys" -a ECDSAP256SHA256 "$ORIGIN" >/dev/null
        # -S: the keys' DNSKEYs go into the zone; -d: the dsset file stays in the key dir.
        if ! dnssec-signzone -q -S -K "$keys" -d "$keys" -o "$ORIGIN" -N keep \
            -s 20250101000000 -e 20550101000000 "${nsec3[@]}" -f "$keys/out.zone" "$ZONE_SRC" >&2; then
            rm -rf "$keys"
            echo "dnssec-signzone failed on $ZONE_SRC" >&2
            return 1
        fi
        # $ORIGIN: nsxdp serve --zone takes the zone's name from it (dnssec-signzone writes
        # only absolute names, no directive).
        { echo "$want"; echo "\$ORIGIN $ORIGIN."; cat "$keys/out.zone"; } >"$signed.tmp.$$"
        mv -f "$signed.tmp.$$" "$signed"
        rm -rf "$keys"
    fi
    ZONE=$signed
}
