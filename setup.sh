#!/bin/sh
# Install everything cocoon needs on Debian 12 and build its guest parts.
# Idempotent: a second run installs nothing new and rebuilds nothing cached.
set -eu
cd "$(dirname "$0")"

# podman + runc: the benchmark's namespace-container reference; podman, conmon
# and containerd also drive cocoon-runtime in tests/integration/test_runtime.py.
# docker.io, docker-compose, python3-docker: clients of `cocoon system service`
# in its tests (dockerd itself is never used; see below). debootstrap: the
# Debian base image of `make bench-build`.
PACKAGES="qemu-system-x86 qemu-utils e2fsprogs musl-tools busybox-static linux-source-6.1
build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils
python3 python3-venv skopeo docker-registry apache2-utils openssl iproute2 nftables
ca-certificates fakeroot podman conmon runc containerd docker.io docker-compose python3-docker
debootstrap"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "==> installing Debian packages:$missing"
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    # Only the docker CLI is wanted: a dockerd the install just started
    # (systemd hosts) is stopped and kept from starting at boot.
    case "$missing " in *" docker.io "*)
        if command -v systemctl >/dev/null && systemctl is-enabled docker.service >/dev/null 2>&1; then
            as_root systemctl disable --now docker.service docker.socket || true
        fi;;
    esac
fi

echo "==> Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
# Byte-compile now: an editable install leaves that to the first import, and
# with PYTHONDONTWRITEBYTECODE set every `cocoon` start would compile anew.
.venv/bin/python -m compileall -q src >/dev/null

cache=$(.venv/bin/python -c 'from cocoon import paths; print(paths.cache_dir())')
mkdir -p "$cache"

echo "==> guest kernel"
kernel/build.sh "$cache"

echo "==> guest agent"
make -s -C guest
agent=guest/build/cocoon-agent
key=$(sha256sum "$agent" | cut -c1-16)
mkdir -p "$cache/agent/$key"
make -s -C guest install DEST="$cache/agent/$key"
ln -sfn "$key" "$cache/agent/current.tmp" && mv -T "$cache/agent/current.tmp" "$cache/agent/current"

echo "==> accelerator (probed once per host, then cached)"
.venv/bin/cocoon system info

echo "==> memory templates (built ahead of the first container)"
# Without them each shape's first container builds its own, so a failure
# here (not root: templates live in a ramfs) only costs that once.
if [ "$(id -u)" = 0 ]; then
    .venv/bin/cocoon system warm || echo "    not built ahead; containers build them on first need"
else
    echo "    skipped: templates need root (a ramfs); without root containers cold-boot"
fi

echo "==> done: activate with '. .venv/bin/activate', then 'make test'"
