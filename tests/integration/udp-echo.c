/* A UDP echo server for the tests of published UDP ports: busybox has none.
 * udp-echo PORT: sends every datagram back to where it came from. */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	char buf[65536];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (argc != 2 || fd < 0)
		return 2;
	addr.sin_port = htons(atoi(argv[1]));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return 1;
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len);

		if (n >= 0)
			sendto(fd, buf, n, 0, (struct sockaddr *)&peer, len);
	}
}
