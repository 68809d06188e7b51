#!/usr/bin/env bash
# Fails if a committed BPF object in ebpf/ is not what scripts/build-ebpf.sh builds from
# the committed sources (run by .ci/run; needs clang and llvm-strip).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$root/scripts/build-ebpf.sh" "$tmp" >/dev/null
status=0
for fresh in "$tmp"/*.bpf.o; do
    committed="$root/ebpf/$(basename "$fresh")"
    if ! cmp -s "$fresh" "$committed"; then
        echo "check-ebpf: $committed differs from a fresh build of its source" >&2
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "check-ebpf: run scripts/build-ebpf.sh and commit ebpf/*.bpf.o" \
        "(built with: $(${CLANG:-clang} --version | head -n1))" >&2
    exit 1
fi
echo "check-ebpf: ebpf/*.bpf.o match their sources ($(${CLANG:-clang} --version | head -n1))"
