#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mounts.h"
#include "protocol.h"
#include "util.h"

#define IFACE "eth0"
_Static_assert(CONFIG_MAX_NICS <= 9, "the cards after eth0 are named with one digit");

static int if_up(int s, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static void set_sin(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
}

uint32_t prefix_netmask(int prefix)
{
	/* A shift by 32 is undefined: /0 is spelled out. */
	return prefix <= 0 ? 0 : htonl(~0u << (32 - (prefix > 32 ? 32 : prefix)));
}

/* ioctls rather than netlink: four calls, no message building. Sets the
 * card's MAC (when given), address and netmask and brings it up; -1 if it is
 * not up. */
static int iface_setup(int s, const char *name, const uint8_t *mac, uint32_t address,
		       int prefix)
{
	char path[64];
	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	/* virtio-net is probed before init runs, but do not bet on it. */
	if (wait_for_path(path, 2000) < 0) {
		logmsg("no %s: the VM has no such network device", name);
		return -1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	/* A VM restored from a memory template has the template's address in
	 * its NIC; each container's own comes in CONFIG. */
	if (mac) {
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
		if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0)
			logmsg("set %s MAC: %s", name, errstr(errno));
		memset(&ifr.ifr_hwaddr, 0, sizeof(ifr.ifr_hwaddr));
	}
	set_sin(&ifr.ifr_addr, address);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		logmsg("set %s address: %s", name, errstr(errno));
		return -1;
	}
	set_sin(&ifr.ifr_netmask, prefix_netmask(prefix));
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		logmsg("set %s netmask: %s", name, errstr(errno));
	if (if_up(s, name) < 0) {
		logmsg("bring up %s: %s", name, errstr(errno));
		return -1;
	}
	return 0;
}

static void eth0_setup(int s, const struct guest_config *cfg)
{
	if (iface_setup(s, IFACE, cfg->has_mac ? cfg->mac : NULL, cfg->address, cfg->prefix) < 0 ||
	    !cfg->has_gateway)
		return;
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	set_sin(&rt.rt_dst, 0);
	set_sin(&rt.rt_genmask, 0);
	set_sin(&rt.rt_gateway, cfg->gateway);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		logmsg("default route: %s", errstr(errno));
}

int resolv_conf_format(const uint32_t *dns, size_t n, char *out, size_t outlen)
{
	size_t used = 0;
	if (outlen == 0)
		return -1;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char one[INET_ADDRSTRLEN];
		struct in_addr in = {dns[i]};
		inet_ntop(AF_INET, &in, one, sizeof(one));
		int w = snprintf(out + used, outlen - used, "nameserver %s\n", one);
		if (w < 0 || (size_t)w >= outlen - used)
			return -1;
		used += (size_t)w;
	}
	return 0;
}

/* Appends one `KEYWORD a b c` line to out (already holding a string); -1 if it does not fit. */
static int append_line(char *out, size_t outlen, const char *keyword, const char *items,
		       size_t n, size_t stride)
{
	if (n == 0)
		return 0;
	size_t used = strlen(out);
	int w = snprintf(out + used, outlen - used, "%s", keyword);
	for (size_t i = 0; w >= 0 && (size_t)w < outlen - used && i < n; i++) {
		used += (size_t)w;
		w = snprintf(out + used, outlen - used, " %s", items + i * stride);
	}
	if (w < 0 || (size_t)w >= outlen - used)
		return -1;
	used += (size_t)w;
	if (used + 1 >= outlen)
		return -1;
	strcpy(out + used, "\n");
	return 0;
}

int resolv_conf_extra(const struct guest_config *cfg, char *out, size_t outlen)
{
	if (append_line(out, outlen, "search", cfg->dns_search[0], cfg->nsearch,
			sizeof(cfg->dns_search[0])) < 0)
		return -1;
	return append_line(out, outlen, "options", cfg->dns_options[0], cfg->noptions,
			   sizeof(cfg->dns_options[0]));
}

void net_lo_up(void)
{
	static int done;
	if (done)
		return;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	/* The kernel gives lo 127.0.0.1/8 by itself when it comes up. */
	if (s < 0 || if_up(s, "lo") < 0)
		logmsg("bring up lo: %s", errstr(errno));
	else
		done = 1;
	if (s >= 0)
		close(s);
}

void net_setup(const struct guest_config *cfg)
{
	net_lo_up();
	if (cfg->has_address || cfg->nnics) {
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s < 0) {
			logmsg("socket: %s", errstr(errno));
			return;
		}
		if (cfg->has_address)
			eth0_setup(s, cfg);
		/* The other networks' cards: only their own subnets' routes,
		 * which the kernel adds with each address. */
		for (size_t i = 0; i < cfg->nnics; i++) {
			char name[] = "ethN"; /* eth1 to eth7: CONFIG_MAX_NICS is one digit */
			name[3] = (char)('1' + i);
			iface_setup(s, name, cfg->nics[i].mac, cfg->nics[i].address,
				    cfg->nics[i].prefix);
		}
		close(s);
	}

	/* Without DNS, DNS_SEARCH or DNS_OPTION fields the image's own file is left alone. */
	static char conf[CONFIG_MAX_DNS * 32 + CONFIG_MAX_SEARCH * (SEARCH_DOMAIN_MAX + 1) +
			 CONFIG_MAX_DNS_OPTIONS * (DNS_OPTION_MAX + 1) + 32];
	if (cfg->ndns == 0 && cfg->nsearch == 0 && cfg->noptions == 0)
		return;
	if (resolv_conf_format(cfg->dns, cfg->ndns, conf, sizeof(conf)) < 0 ||
	    resolv_conf_extra(cfg, conf, sizeof(conf)) < 0)
		logmsg("resolv.conf does not fit");
	else if (mkdir_p("/etc", 0755) < 0 ||
		 write_file_atomic("/etc/resolv.conf", conf, strlen(conf)) < 0)
		logmsg("write /etc/resolv.conf: %s", errstr(errno));
}
