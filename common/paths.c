#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gr_socket_path(char *buf, size_t len)
{
	const char *env = getenv("GRANTED_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/granted/socket");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/granted/socket", xdg);
	else
		n = snprintf(buf, len, "/tmp/granted-%u/socket", (unsigned)geteuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int gr_xenstore_path(char *buf, size_t len)
{
	const char *env = getenv("GRANTED_XENSTORE");
	if (env && *env) {
		int n = snprintf(buf, len, "%s", env);
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	int r = gr_socket_path(buf, len);
	if (r < 0)
		return r;
	char *slash = strrchr(buf, '/');
	size_t dir = slash ? (size_t)(slash - buf) + 1 : 0;
	static const char name[] = "xenstored.socket";
	if (dir + sizeof(name) > len)
		return -ENAMETOOLONG;
	memcpy(buf + dir, name, sizeof(name));
	return 0;
}
