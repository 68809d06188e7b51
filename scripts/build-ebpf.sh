#!/usr/bin/env bash
# Builds the XDP programs in ebpf/ into BPF objects, by default next to their sources
# (ebpf/NAME.bpf.o, which are committed so that building nsxdp needs no clang).
#   scripts/build-ebpf.sh [OUTDIR]
# Needs clang and llvm-strip (Debian: apt-get install clang llvm). The output depends only
# on the sources, the clang version and the kernel UAPI headers, not on where the checkout
# lives: debug paths are rewritten relative to the repository root, and the DWARF sections
# are stripped (the BTF that aya and the verifier use stays).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/ebpf}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

clang=${CLANG:-clang}
strip=${LLVM_STRIP:-llvm-strip}

for src in ebpf/nsxdp.bpf.c ebpf/foreign_pass.bpf.c; do
    obj="$out/$(basename "${src%.c}").o"
    # Debian keeps asm/types.h under the multiarch directory, which -target bpf does not search.
    "$clang" -O2 -g -Wall -Werror -target bpf \
        -I/usr/include/x86_64-linux-gnu \
        -fdebug-prefix-map="$root"=. -fdebug-compilation-dir=. \
        -c "$src" -o "$obj.tmp"
    "$strip" --strip-debug "$obj.tmp" -o "$obj.tmp2"
    rm -f "$obj.tmp"
    mv "$obj.tmp2" "$obj"
    echo "built $obj"
done
