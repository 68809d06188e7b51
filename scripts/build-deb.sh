#!/usr/bin/env bash
# Builds the Debian package of nsxdp and prints its path (the last line of output).
#
#   scripts/build-deb.sh [--profile PROFILE] [--no-build] [--output DIR]
#
# Steps: `cargo build` of the binary (PROFILE: release, the default, or a custom profile;
# cargo-deb refuses dev; --no-build uses the binary already in the target directory), the
# binary's `nsxdp generate` writes the manual pages and the bash, zsh and fish completions
# into target/generated/, then `cargo deb --no-build` packs what
# [package.metadata.deb] in Cargo.toml lists (default output: the target directory's
# debian/). Needs cargo-deb (`cargo install cargo-deb --locked`) and dpkg-dev's tools.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=yes
output=
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    --output) output="$2"; shift 2 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
bin="$target/$profile/nsxdp"
if [ "$build" = yes ]; then
    cargo build --locked --profile "$profile" --bin nsxdp >&2
fi
[ -x "$bin" ] || { echo "build-deb.sh: $bin is not built" >&2; exit 1; }

# Where Cargo.toml's assets expect them (relative to the package, whatever CARGO_TARGET_DIR is).
generated=target/generated
rm -rf "$generated"
"$bin" generate man "$generated/man" >/dev/null
for shell in bash zsh fish; do
    "$bin" generate completions "$shell" "$generated/completions" >/dev/null
done

# --strip: [profile.release] keeps line tables for profiling (debug = 1); the packaged
# binary goes without them (94 MB of a debug build become 15).
args=(--no-build --locked --strip --profile "$profile")
if [ -n "$output" ]; then
    mkdir -p "$output"
    args+=(--output "$output")
fi
# cargo deb prints the package's path last.
cargo deb "${args[@]}" | tail -n 1
