#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

void gr_debug(const char *fmt, ...)
{
	static int enabled = -1;
	int saved = errno;
	if (enabled < 0) {
		const char *e = getenv("GRANTED_DEBUG");
		enabled = e && *e && *e != '0';
	}
	if (enabled) {
		char line[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		fprintf(stderr, "granted[%d]: %s\n", (int)getpid(), line);
	}
	errno = saved;
}
