"""External programs cocoon runs, looked up once, with an install hint."""

from __future__ import annotations

import functools
import shutil

from cocoon.errors import NotFound

# program -> Debian package that provides it
_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "fakeroot": "fakeroot",
    "musl-gcc": "musl-tools",
    "nft": "nftables",
}


@functools.cache
def find(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        package = _PACKAGES.get(program, program)
        raise NotFound(f"{program} not found (install it: apt-get install {package})")
    return path
