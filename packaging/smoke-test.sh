#!/usr/bin/env bash
# Package smoke test: builds the .deb from BUILD_DIR (cpack), checks its metadata and contents,
# runs lintian when it is installed, installs the package, runs the installed `lfharvest
# --version` and `lfharvest check` against the fake Langfuse, upgrades it in place, then purges
# it and checks that nothing is left.
#
# Usage: packaging/smoke-test.sh BUILD_DIR
#   BUILD_DIR: a configured (and usually built) CMake build folder of the whole project.
# It installs and removes a package: run it as root on a throwaway machine (CI does).
# Environment:
#   LFHARVEST_SMOKE_NO_INSTALL=1  stop after the checks of the .deb file (no root needed)
#   LFHARVEST_SMOKE_LINTIAN=0     skip lintian even when it is installed
# Exit status 0 when every check passed; the first failed check stops it with a message.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 64
fi
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
package_dir="$build_dir/package"
work=$(mktemp -d)
fake_pid=""
installed_here=0

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "smoke-test: FAILED: $*" >&2
    exit 1
}
cleanup() {
    local status=$?
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
    if [ "$installed_here" = 1 ] && dpkg-query -W lfharvest >/dev/null 2>&1; then
        dpkg --purge lfharvest >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# --- Build the package ---------------------------------------------------------------------------
step "build and package ($build_dir)"
[ -f "$build_dir/CPackConfig.cmake" ] || fail "$build_dir has no CPackConfig.cmake (configure it first)"
cmake --build "$build_dir" -j"$(nproc)"
rm -f "$package_dir"/*.deb
(cd "$build_dir" && cpack --config CPackConfig.cmake -G DEB -B "$package_dir")
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")
arch=$(dpkg --print-architecture)
deb="$package_dir/lfharvest_${version}_${arch}.deb"
[ -f "$deb" ] || fail "expected $deb; found: $(ls "$package_dir")"
echo "package: $deb ($(stat -c %s "$deb") bytes)"

# --- Metadata ------------------------------------------------------------------------------------
step "dpkg-deb -I"
dpkg-deb -I "$deb" | tee "$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = lfharvest ] || fail "Package field"
[ "$(field Version)" = "$version" ] || fail "Version field: $(field Version), want $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture field"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
depends=$(field Depends)
for lib in libc6 libcurl4 libsqlite3-0 libstdc++6; do
    grep -q "\b$lib\b" <<<"$depends" || fail "Depends lacks $lib (shlibdeps): $depends"
done
dpkg-deb -e "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = /etc/lfharvest/lfharvest.toml ] ||
    fail "conffiles: $(cat "$work/control/conffiles")"
for script in postinst prerm postrm; do
    [ -x "$work/control/$script" ] || fail "maintainer script $script missing or not executable"
    sh -n "$work/control/$script" || fail "$script: syntax error"
done
changelog_version=$(sed -n '1s/^lfharvest (\([^)]*\)).*/\1/p' "$source_dir/packaging/changelog")
[ "$changelog_version" = "$version" ] ||
    fail "packaging/changelog starts at $changelog_version; the project is $version"

# --- Contents ------------------------------------------------------------------------------------
step "dpkg-deb -c"
dpkg-deb -c "$deb" | tee "$work/contents"
unit_path=$(awk '$6 ~ /\/lfharvest\.service$/ {print substr($6, 2)}' "$work/contents")
for path in /usr/bin/lfharvest /etc/lfharvest/lfharvest.toml /usr/share/man/man1/lfharvest.1.gz \
    /usr/share/bash-completion/completions/lfharvest /usr/share/doc/lfharvest/copyright \
    /usr/share/doc/lfharvest/changelog.gz; do
    grep -q " \.$path\$" "$work/contents" || fail "the package lacks $path"
done
case "$unit_path" in
    /lib/systemd/system/lfharvest.service | /usr/lib/systemd/system/lfharvest.service) ;;
    *) fail "unit at an unexpected place: '$unit_path'" ;;
esac
if awk '$2 != "root/root"' "$work/contents" | grep -q .; then
    fail "files not owned by root: $(awk '$2 != "root/root"' "$work/contents")"
fi
mkdir "$work/tree"
dpkg-deb -x "$deb" "$work/tree"
grep -qx 'ExecStart=/usr/bin/lfharvest run --config /etc/lfharvest/lfharvest.toml' \
    "$work/tree$unit_path" || fail "the unit does not start /usr/bin/lfharvest: $(grep ExecStart= "$work/tree$unit_path")"
template_path="${unit_path%lfharvest.service}lfharvest@.service"
grep -qx 'ExecStart=/usr/bin/lfharvest run --config /etc/lfharvest/%i.toml' \
    "$work/tree$template_path" || fail "the template unit $template_path is missing or wrong"
gzip -t "$work/tree/usr/share/man/man1/lfharvest.1.gz" || fail "man page is not valid gzip"
file "$work/tree/usr/bin/lfharvest" | grep -q "ELF" || fail "the binary is not an ELF file"
file "$work/tree/usr/bin/lfharvest" | grep -q "not stripped" && fail "binary is not stripped"

# --- lintian -------------------------------------------------------------------------------------
if [ "${LFHARVEST_SMOKE_LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
    step "lintian"
    # Errors fail the test; warnings and notes are shown (docs/operations.md explains them).
    lintian --info --display-info --fail-on error "$deb" || fail "lintian found errors"
else
    step "lintian: not installed, skipped"
fi

if [ "${LFHARVEST_SMOKE_NO_INSTALL:-0}" = 1 ]; then
    echo "smoke-test: package checks passed (install skipped)"
    exit 0
fi

# --- Install -------------------------------------------------------------------------------------
step "install"
[ "$(id -u)" = 0 ] || fail "installing needs root (or set LFHARVEST_SMOKE_NO_INSTALL=1)"
if dpkg-query -W -f='${Status}' lfharvest 2>/dev/null | grep -q installed; then
    fail "a lfharvest package is already installed here; this test only runs on a throwaway machine"
fi
installed_here=1
dpkg -i "$deb"
[ "$(command -v lfharvest)" = /usr/bin/lfharvest ] || fail "lfharvest is not /usr/bin/lfharvest"
got=$(lfharvest --version)
[ "$got" = "lfharvest $version" ] || fail "--version says '$got'"
echo "$got"
dpkg-query -W -f='${Conffiles}\n' lfharvest | grep -q '/etc/lfharvest/lfharvest.toml' ||
    fail "the configuration is not registered as a conffile"
man -w lfharvest >/dev/null || fail "man cannot find lfharvest(1)"
if command -v systemd-analyze >/dev/null; then
    # The installed unit, with its binary and man page in place: not a word on stderr.
    systemd-analyze verify "$unit_path" 2>"$work/verify" || true
    [ ! -s "$work/verify" ] || fail "systemd-analyze verify: $(cat "$work/verify")"
    echo "systemd-analyze verify: clean"
fi

# --- check against the fake server ---------------------------------------------------------------
step "lfharvest check against the fake Langfuse"
python3 "$source_dir/tests/fake_langfuse/fake_langfuse.py" --port 0 --demo \
    >"$work/fake.out" 2>"$work/fake.err" &
fake_pid=$!
for _ in $(seq 100); do
    grep -q '^LISTENING ' "$work/fake.out" 2>/dev/null && break
    sleep 0.1
done
base_url=$(sed -n 's/^LISTENING //p' "$work/fake.out")
[ -n "$base_url" ] || fail "the fake server did not start: $(cat "$work/fake.err")"
(umask 077 && printf 'sk-lf-demo\n' >"$work/secret-key")
# The installed example configuration (every setting at its default), the rest from the
# environment, as a user would try it from a shell.
LANGFUSE_BASE_URL="$base_url" LANGFUSE_PUBLIC_KEY=pk-lf-demo \
    LFHARVEST_SECRET_KEY_FILE="$work/secret-key" \
    lfharvest check --config /etc/lfharvest/lfharvest.toml --db "$work/check.db" | tee "$work/check"
grep -q 'keys *valid for project proj-demo' "$work/check" || fail "check did not validate the keys"
lfharvest status --db "$work/check.db" >/dev/null || fail "status on the new database"

# --- Upgrade in place, then purge ----------------------------------------------------------------
step "reinstall (the upgrade path of the maintainer scripts)"
echo "# changed by the administrator" >>/etc/lfharvest/lfharvest.toml
dpkg -i --force-confold "$deb"
grep -q 'changed by the administrator' /etc/lfharvest/lfharvest.toml ||
    fail "an upgrade overwrote the administrator's configuration"

step "remove, then purge"
install -m 600 /dev/null /etc/lfharvest/secret-key
dpkg --remove lfharvest
[ ! -e /usr/bin/lfharvest ] || fail "remove left /usr/bin/lfharvest"
[ -e /etc/lfharvest/lfharvest.toml ] || fail "remove deleted the configuration (only purge may)"
dpkg --purge lfharvest
installed_here=0
[ ! -e /etc/lfharvest ] || fail "purge left /etc/lfharvest: $(ls -A /etc/lfharvest)"
[ ! -e "$unit_path" ] || fail "purge left the unit"

echo
echo "smoke-test: all package checks passed ($deb)"
