"""cocoon-runtime: a runc-compatible command line, so podman and containerd run cocoon VMs."""
