#!/usr/bin/env bash
# Signs the three DNSSEC test zones of tests/differential (README.md, "The signed zones")
# from zone.in, and their parent from parent.zone.in, with the committed keys in keys/,
# into zones/:
#   nsec.signed.test.   NSEC,                          RSASHA256 (KSK 2048, ZSK 1024 bits)
#   nsec3.signed.test.  NSEC3 salt 8 octets, 5 iterations, ED25519
#   optout.signed.test. NSEC3 opt-out, salt, 10 iterations, RSASHA256 (KSK 2048, ZSK 1024)
#   signed.test.        NSEC, ED25519; the children's DS (SHA-256 of their KSKs)
# Signatures are valid from 2025-01-01 to 2055-01-01 (fixed, so a run gives the same files:
# RSASHA256 and ED25519 signatures are deterministic).
#
#   sign.sh             re-sign into zones/
#   sign.sh --check     sign into a temporary directory and fail if zones/ differs
#   sign.sh --new-keys  make new keys in keys/ first (the zones change completely)
# Needs dnssec-keygen, dnssec-signzone and dnssec-dsfromkey (bind9-utils).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
keys="$here/keys"
out="$here/zones"
mode="${1:-sign}"
case "$mode" in
sign | --check | --new-keys) ;;
*)
    echo "usage: $0 [--check | --new-keys]" >&2
    exit 2
    ;;
esac
for tool in dnssec-keygen dnssec-signzone dnssec-dsfromkey; do
    command -v "$tool" >/dev/null || {
        echo "sign.sh: $tool is missing (package bind9-utils)" >&2
        exit 3
    }
done
inception=20250101000000
expiration=20550101000000

# zone, algorithm, KSK bits, ZSK bits, dnssec-signzone's NSEC3 options
zones=(
    "nsec.signed.test RSASHA256 2048 1024"
    "nsec3.signed.test ED25519 - - -3 5ca1ab1e0ddba115 -H 5"
    "optout.signed.test RSASHA256 2048 1024 -3 0ff1ce0ff1ce -H 10 -A"
    "signed.test ED25519 - - "
)

if [ "$mode" = --new-keys ]; then
    rm -f "$keys"/K*
    for z in "${zones[@]}"; do
        read -r name alg kbits zbits _ <<<"$z"
        kb=() zb=()
        [ "$kbits" != - ] && kb=(-b "$kbits")
        [ "$zbits" != - ] && zb=(-b "$zbits")
        dnssec-keygen -q -K "$keys" -a "$alg" "${kb[@]}" -f KSK -L 3600 "$name" >/dev/null
        dnssec-keygen -q -K "$keys" -a "$alg" "${zb[@]}" -L 3600 "$name" >/dev/null
    done
fi

dest="$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
[ "$mode" = --check ] && dest="$tmp/out" && mkdir "$dest"

for z in "${zones[@]}"; do
    read -r name _ _ _ nsec3 <<<"$z"
    unsigned="$tmp/$name.unsigned"
    mapfile -t keyfiles < <(ls "$keys"/K"$name".+*.key)
    if [ "$name" = signed.test ]; then
        # the parent (signed last): its content and the children's DS
        mapfile -t ksks < <(grep -l "DNSKEY 257 " "$keys"/K*.signed.test.+*.key)
        { echo "\$ORIGIN $name."; cat "$here/parent.zone.in" "${keyfiles[@]}"; } >"$unsigned"
        for k in "${ksks[@]}"; do dnssec-dsfromkey -2 "$k"; done >>"$unsigned"
    else
        { echo "\$ORIGIN $name."; cat "$here/zone.in" "${keyfiles[@]}"; } >"$unsigned"
    fi
    # shellcheck disable=SC2206 # the NSEC3 options are words
    opts=($nsec3)
    (cd "$tmp" && dnssec-signzone -q -x -P -o "$name" -s "$inception" -e "$expiration" -j 0 \
        -N keep -O full -T 3600 "${opts[@]}" -f "$dest/$name.zone" "$unsigned" "${keyfiles[@]%.key}" >/dev/null)
    # a header line saying where the file comes from (dnssec-signzone writes none)
    sed -i -e "1i ; $name: signed by tests/differential/dnssec/sign.sh from zone.in; do not edit" \
        -e "/^; File written on /d" "$dest/$name.zone"
done

if [ "$mode" = --check ]; then
    # dnssec-signzone writes the names in no fixed order: compare the records, sorted
    status=0
    for f in "$dest"/*.zone; do
        if ! diff <(sort "$f") <(sort "$out/$(basename "$f")") >"$tmp/diff"; then
            head -20 "$tmp/diff" >&2
            echo "sign.sh: zones/$(basename "$f") differs from what sign.sh makes: run tests/differential/dnssec/sign.sh" >&2
            status=1
        fi
    done
    [ "$status" = 0 ] && echo "sign.sh: zones/ holds what sign.sh makes"
    exit "$status"
fi
