"""Container networking: bridges and TAPs, IP allocation, NAT, published ports, names.

``ipam`` keeps networks and leases in the state dir; ``netdev`` creates the
kernel's devices; ``nat`` owns one nftables table; ``ports`` forwards
published ports; ``teardown`` removes what cocoon made. Tying them to one
container's life is the container layer's job (``cocoon.container.network``).
"""
