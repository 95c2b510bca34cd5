#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
