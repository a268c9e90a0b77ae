#!/usr/bin/env bash
# Sets up, builds (warnings are errors) and runs every test: unit, fake server, integration,
# service and reliability suites (ctest). Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
LFHARVEST_CMAKE_ARGS="-DLFHARVEST_WERROR=ON ${LFHARVEST_CMAKE_ARGS:-}" scripts/bootstrap.sh build
ctest --test-dir build --output-on-failure "$@"
