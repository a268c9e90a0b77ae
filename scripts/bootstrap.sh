#!/usr/bin/env bash
# Installs the build dependencies from Debian's packages (when missing) and builds lfharvest.
# Usage: scripts/bootstrap.sh [BUILD_DIR]   (default: build)
# Environment: LFHARVEST_CMAKE_ARGS adds CMake options; LFHARVEST_SKIP_APT=1 skips apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(
  build-essential cmake pkg-config git
  libcurl4-openssl-dev libsqlite3-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  doctest-dev libtomlplusplus-dev libcli11-dev libssl-dev
  python3 sqlite3 openssl ca-certificates
  strace systemd clang llvm libclang-rt-14-dev dpkg-dev file lintian man-db
  debootstrap systemd-container
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The consumer checks (ctest -L consumers) run Node.js: Debian's nodejs (18) and npm when no node
# is installed (another node, e.g. NodeSource's, already brings npm and would conflict).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ] && [ "${LFHARVEST_SKIP_APT:-0}" != 1 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LFHARVEST_CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$(nproc)"
