"""What a file or folder holds on the host's disk: allocated blocks, as ``du`` counts.

Sparse disks (a container's qcow2, a volume's ext4 image) are far smaller
on the disk than their length says: only the blocks count. Symbolic links
are not followed; something that vanishes while counted counts nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def allocated(path: Path) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    total = st.st_blocks * 512
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


__all__ = ["allocated"]
