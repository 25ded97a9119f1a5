"""Root filesystems: image layers to a cached read-only ext4, plus writable disks.

layers  apply tar layers (and OCI whiteouts) to a directory, safely
ext4    mkfs.ext4 images and sparse copies
disks   the per-image cache and per-container writable disks
"""
