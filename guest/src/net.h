/* The container's network, from the CONFIG and HOSTS messages. */
#ifndef COCOON_NET_H
#define COCOON_NET_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/* Brings up lo, once: the same in every VM, so done before CONFIG (a memory
 * template's clones wake with it up). Problems are logged. */
void net_lo_up(void);

/* Brings up lo (unless done); then, if cfg has an ADDRESS, configures eth0 (address, up,
 * default route through GATEWAY) and writes /etc/resolv.conf from the DNS,
 * DNS_SEARCH and DNS_OPTION fields. Problems are logged: a container without network still runs. */
void net_setup(const struct guest_config *cfg);

/*
 * Formats resolv.conf: one `nameserver` line per address (network byte
 * order). Returns 0, or -1 if out is too small.
 */
int resolv_conf_format(const uint32_t *dns, size_t n, char *out, size_t outlen);

/*
 * Appends resolv.conf's `search` and `options` lines (DNS_SEARCH, DNS_OPTION
 * fields, when there are any) to the string in out. Returns 0, or -1 if out
 * is too small.
 */
int resolv_conf_extra(const struct guest_config *cfg, char *out, size_t outlen);

/* The netmask of a prefix length (0..32), in network byte order. */
uint32_t prefix_netmask(int prefix);

#endif
