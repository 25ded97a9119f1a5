"""The virtual machine: QEMU microvm command line, accelerator, kernel and agent artifacts."""
