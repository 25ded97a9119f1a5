#!/bin/sh
# Build the cocoon guest kernel: tinyconfig + cocoon.config from Debian's
# linux-source-6.1, cached by the hash of everything that shapes the result.
# Usage: kernel/build.sh [CACHE_DIR]   prints the path of the cached vmlinux.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${COCOON_CACHE_DIR:-${XDG_CACHE_HOME:-}}}
if [ -z "$cache" ]; then
    if [ "$(id -u)" = 0 ]; then cache=/var/cache/cocoon; else cache=$HOME/.cache/cocoon; fi
elif [ -z "${1:-}" ] && [ -z "${COCOON_CACHE_DIR:-}" ]; then
    cache=$cache/cocoon
fi
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "kernel/build.sh: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
# Bump when the build steps change in a way that alters the output.
recipe=1
key=$( (echo "$srcver $recipe"; cat "$here/cocoon.config") | sha256sum | cut -c1-16)
out=$cache/kernel/$key
publish() {
    # "current" is how cocoon finds the kernel setup built last.
    ln -sfn "$key" "$cache/kernel/current.tmp" && mv -T "$cache/kernel/current.tmp" "$cache/kernel/current"
    echo "$out/vmlinux"
}
if [ -f "$out/vmlinux" ]; then publish; exit 0; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/cocoon-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building guest kernel $key from linux-source $srcver (a few minutes)..." >&2
tar -C "$work" -xf "$tarball"
src=$work/linux-source-6.1
make -C "$src" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here/cocoon.config" >/dev/null
make -C "$src" -s olddefconfig >&2
# Every requested option must have survived olddefconfig; a silent drop
# would give a kernel that boots but lacks a device.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$here/cocoon.config" | while read -r line; do
    grep -qx "$line" "$src/.config" || echo "$line"; done)
if [ -n "$missing" ]; then echo "kernel/build.sh: options dropped by Kconfig:" $missing >&2; exit 1; fi
make -C "$src" -s -j"$(($(nproc) + 1))" vmlinux >&2
mkdir -p "$out.tmp"
cp "$src/vmlinux" "$out.tmp/vmlinux"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
cp "$src/.config" "$out.tmp/config"
echo "$srcver" > "$out.tmp/source-version"
rm -rf "$out"
mv "$out.tmp" "$out"
publish
