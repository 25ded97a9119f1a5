#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
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

/* ioctls rather than netlink: four calls, no message building. */
static void eth0_setup(int s, uint32_t addr, int prefix, const char *gw)
{
	/* virtio-net is probed before init runs, but do not bet on it. */
	if (wait_for_path("/sys/class/net/" IFACE, 2000) < 0) {
		logmsg("no %s: the VM has no network device", IFACE);
		return;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, IFACE);
	set_sin(&ifr.ifr_addr, addr);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		logmsg("set %s address: %s", IFACE, errstr(errno));
		return;
	}
	set_sin(&ifr.ifr_netmask, prefix ? htonl(~0u << (32 - prefix)) : 0);
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		logmsg("set %s netmask: %s", IFACE, errstr(errno));
	if (if_up(s, IFACE) < 0) {
		logmsg("bring up %s: %s", IFACE, errstr(errno));
		return;
	}
	struct in_addr gw_addr;
	if (!gw || inet_pton(AF_INET, gw, &gw_addr) != 1) {
		if (gw)
			logmsg("bad cocoon.gw=%s", gw);
		return;
	}
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	set_sin(&rt.rt_dst, 0);
	set_sin(&rt.rt_genmask, 0);
	set_sin(&rt.rt_gateway, gw_addr.s_addr);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		logmsg("default route via %s: %s", gw, errstr(errno));
}

void net_setup(const char *cmdline)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		logmsg("socket: %s", errstr(errno));
		return;
	}
	/* The kernel gives lo 127.0.0.1/8 by itself when it comes up. */
	if (if_up(s, "lo") < 0)
		logmsg("bring up lo: %s", errstr(errno));

	char ip[64], gw[64], dns[512], conf[1024];
	if (cmdline_get(cmdline, "ip", ip, sizeof(ip)) == 1) {
		uint32_t addr;
		int prefix;
		if (parse_ipv4_cidr(ip, &addr, &prefix) < 0)
			logmsg("bad cocoon.ip=%s", ip);
		else
			eth0_setup(s, addr, prefix, cmdline_get(cmdline, "gw", gw, sizeof(gw)) == 1 ? gw : NULL);
	}
	close(s);

	if (cmdline_get(cmdline, "dns", dns, sizeof(dns)) == 1) {
		if (resolv_conf_format(dns, conf, sizeof(conf)) < 0)
			logmsg("bad cocoon.dns=%s", dns);
		else if (mkdir_p("/etc", 0755) < 0 ||
			 write_file_atomic("/etc/resolv.conf", conf, strlen(conf)) < 0)
			logmsg("write /etc/resolv.conf: %s", errstr(errno));
	}
}

void net_write_hosts(const void *data, size_t len)
{
	if (mkdir_p("/etc", 0755) < 0 || write_file_atomic("/etc/hosts", data, len) < 0)
		logmsg("write /etc/hosts: %s", errstr(errno));
}
