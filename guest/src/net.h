/* The container's network, from the boot parameters and HOSTS messages. */
#ifndef COCOON_NET_H
#define COCOON_NET_H

#include <stddef.h>

/* Brings up lo; then, if cmdline has cocoon.ip, configures eth0 (address,
 * up, default route through cocoon.gw) and writes /etc/resolv.conf from
 * cocoon.dns. Problems are logged: a container without network still runs. */
void net_setup(const char *cmdline);

/* Replaces /etc/hosts with data (a HOSTS message), atomically. */
void net_write_hosts(const void *data, size_t len);

#endif
