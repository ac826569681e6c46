#!/usr/bin/env bash
# Runs the whole test suite against the debug build and keeps its output in .build/test.log.
# When something fails, the failures are repeated at the very end, so the last lines of a CI log
# say which test failed and why (the full log can be thousands of lines).
# Then the engine host's tests (tests/engine, pytest with the real models; log in .build/engine-test.log) unless
# AVATAR_ENGINE_TESTS=0, and the web client's tests in headless Chromium (tests/browser, pytest + Selenium; log in
# .build/browser-test.log) unless AVATAR_BROWSER_TESTS=0 -- both only when no arguments were given (a filtered Swift run).
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
python="${AVATAR_VENV_DIR:-${AVATAR_HOME:-$HOME/.avatar}/venv}/bin/python"
if [ "$#" -eq 0 ] && [ "${AVATAR_ENGINE_TESTS:-1}" != "0" ]; then
  echo
  echo "==> engine host (tests/engine, pytest with the real models)"
  engine_log=.build/engine-test.log
  PYTHONPATH="$PWD/engine" "$python" -m pytest -p no:cacheprovider -v -rA tests/engine 2>&1 | tee "$engine_log"
  engine=${PIPESTATUS[0]}
  if [ "$engine" -ne 0 ]; then
    echo
    echo "==> engine host test failures (full output: $engine_log)"
    grep -E '^(FAILED|ERROR)' "$engine_log" | tail -n 20
    [ "$status" -eq 0 ] && status=$engine
  fi
fi
if [ "$#" -eq 0 ] && [ "${AVATAR_BROWSER_TESTS:-1}" != "0" ]; then
  echo
  echo "==> web client in headless Chromium (tests/browser)"
  browser_log=.build/browser-test.log
  AVATAR_BIN="$PWD/.build/debug/avatar" "$python" -m pytest -p no:cacheprovider -v -rA tests/browser 2>&1 | tee "$browser_log"
  browser=${PIPESTATUS[0]}
  if [ "$browser" -ne 0 ]; then
    echo
    echo "==> browser test failures (full output: $browser_log)"
    grep -E '^(FAILED|ERROR)' "$browser_log" | tail -n 20
    [ "$status" -eq 0 ] && status=$browser
  fi
fi
exit "$status"
