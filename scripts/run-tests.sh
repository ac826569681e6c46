#!/usr/bin/env bash
# Runs the whole test suite against the debug build and keeps its output in .build/test.log.
# When something fails, the failures are repeated at the very end, so the last lines of a CI log
# say which test failed and why (the full log can be thousands of lines).
set -uo pipefail
cd "$(dirname "$0")/.."
log=.build/test.log
mkdir -p .build
AVATAR_BIN="$PWD/.build/debug/avatar" swift test --skip-build --no-parallel "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "==> failures (full output: $log)"
  grep -E '✘|recorded an issue|error:|fatal' "$log" | grep -v '^✘ Test run with' | tail -n 40
  grep -E '^✘ Test run with' "$log" | tail -n 1
fi
exit "$status"
