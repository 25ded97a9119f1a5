"""Root filesystems: image layers to a cached disk per image, and each
container's copy-on-write qcow2 overlay of it.

layers  apply tar layers (and OCI whiteouts) to a directory, safely
ext4    mkfs.ext4 images
disks   the per-image cache (built at pull/load) and per-container disks
delta   an image's disk as a qcow2 overlay of its parent image's disk
child   disk building in a child process (fakeroot, a private mount namespace)
"""
