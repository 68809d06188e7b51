#!/usr/bin/env bash
# Runs `cargo test --locked ARGS...` and then says what was skipped: the tests that found a
# prerequisite missing (a peer, a tool, root) write one line each to target/skipped.txt
# (tests/common: `skipped`, `skipped_part`), and cargo counts them as passed. Prints that
# list, its count, and a closing line with cargo's totals less the skipped tests. Exits with
# cargo's status.
#   scripts/test-summary.sh                      # the whole suite
#   scripts/test-summary.sh --test serve         # any arguments of cargo test
#   scripts/test-summary.sh --report OUT STATUS  # only the summary of a run already made
#                                                # (OUT: its output; target/skipped.txt
#                                                # emptied before it), ending with STATUS
set -uo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
list="$target/skipped.txt"
if [ "${1:-}" = --report ]; then
    out=${2:?--report OUT STATUS}
    status=${3:?--report OUT STATUS}
    touch "$list"
else
    : > "$list"
    out="$(mktemp)"
    trap 'rm -f "$out"' EXIT
    cargo test --locked "$@" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
fi

# cargo's "test result: ok. 12 passed; 0 failed; 1 ignored; ..." lines, one per test binary.
sum() { grep '^test result:' "$out" | grep -o "[0-9]* $1;" | awk '{ n += $1 } END { print n + 0 }'; }
passed=$(sum passed)
failed=$(sum failed)
# Whole tests skipped (a part left out, "(part)", is not a skipped test).
skipped=$(grep -v ' (part): ' "$list" | sed 's/: .*//' | sort -u | grep -c . || true)
parts=$(grep -c ' (part): ' "$list" || true)

echo
if [ -s "$list" ]; then
    echo "skipped for a missing prerequisite ($skipped tests, $parts parts of tests; lines in $list):"
    sort -u "$list" | sed 's/^/  /'
else
    echo "no test skipped"
fi
echo "summary: $((passed - skipped)) passed, $failed failed, $skipped skipped"
exit "$status"
