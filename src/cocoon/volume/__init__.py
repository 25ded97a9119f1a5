"""Volumes, bind mounts and tmpfs: one mount model, from the flags to the VM.

mounts  the model (BindMount, VolumeMount, TmpfsMount) and the -v, --mount,
        --tmpfs parsers; pure
store   named and anonymous volumes on the host (ext4 disk images, or folders
        shared over 9p), and which containers use them
plan    what the container layer calls at create, boot, VM exit and rm
"""
