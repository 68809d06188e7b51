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
