"""Root filesystems: image layers to a cached ext4 per image, and each
container's copy-on-write qcow2 overlay of it.

layers  apply tar layers (and OCI whiteouts) to a directory, safely
ext4    mkfs.ext4 images
disks   the per-image cache and per-container disks
"""
