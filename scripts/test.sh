#!/usr/bin/env bash
# Sets up, builds (warnings are errors) and runs every test: unit, fake server, integration,
# service and reliability suites, then the system tests (the package under a real systemd in
# containers, tests/system), each with ctest. Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
LFHARVEST_CMAKE_ARGS="-DLFHARVEST_WERROR=ON ${LFHARVEST_CMAKE_ARGS:-}" scripts/bootstrap.sh build
# Three ctest runs: the unit cases (one short process each) two at a time; the other suites one
# at a time, as their timings want; the system tests last, on their own: they boot containers
# and, on a cold build folder, make the Debian tree and build the previous release's package.
# Their files run side by side (-j3): they mostly wait on systemd and the fake servers, and the
# tree (network) is made while the previous release builds (CPU).
status=0
ctest --test-dir build --output-on-failure -L unit -j2 "$@" || status=$?
ctest --test-dir build --output-on-failure -LE 'unit|system' "$@" || status=$?
ctest --test-dir build --output-on-failure -L system -j3 "$@" || status=$?
exit "$status"
