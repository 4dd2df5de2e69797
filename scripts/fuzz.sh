#!/usr/bin/env bash
# Runs every fuzz target (func Fuzz* in a _test.go file) for FUZZTIME
# each (default 10s), one after another, and prints the executions per
# target and in total. A crash fails the script; go test writes the
# failing input under the package's testdata/fuzz/<target>/, where it
# becomes a seed that `go test` replays on every run.
#   FUZZTIME=5m scripts/fuzz.sh              # a longer run
#   FUZZTIME=30s scripts/fuzz.sh FuzzCleanPath  # only the named targets
# New inputs that widen coverage are minimized for at most
# FUZZMINIMIZETIME (2s): go's default of 60s stalls a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
only=" $* "

total=0
failed=()
while read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
    if [ -n "${*:-}" ] && [[ "$only" != *" $target "* ]]; then
      continue
    fi
    log="$(mktemp)"
    if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-2s}" -parallel "${FUZZPARALLEL:-2}" >"$log" 2>&1; then
      execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)"
      total=$((total + execs))
      printf '%-24s %-22s %12s execs  ok\n' "$target" "$pkg" "$execs"
    elif grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written to' "$log"; then
      # go.dev/issue/75804 (fixed in Go 1.27): the -fuzztime deadline can
      # race the coordinator's shutdown and fail a target that found
      # nothing. A real crash or hang always writes its input.
      execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)"
      total=$((total + execs))
      printf '%-24s %-22s %12s execs  ok (go.dev/issue/75804 at the deadline, no crasher)\n' "$target" "$pkg" "$execs"
    else
      printf '%-24s %-22s FAILED\n' "$target" "$pkg"
      cat "$log"
      failed+=("$target")
    fi
    rm -f "$log"
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sed 's|^\./||' | sort)

echo "fuzz: $total executions in total, ${FUZZTIME:-10s} per target"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; the inputs are in testdata/fuzz" >&2
  exit 1
fi
