#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int current_level = LOG_WARNING;

void log_set_level(int level)
{
	current_level = level;
}

int log_get_level(void)
{
	return current_level;
}

int log_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = { { "error", LOG_ERR },
		      { "warning", LOG_WARNING },
		      { "info", LOG_INFO },
		      { "debug", LOG_DEBUG } };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	return -1;
}

void log_printf(int level, const char *fmt, ...)
{
	static const char *const tags[] = { "", "", "", "error", "warning", "", "info", "debug" };
	int saved = errno;
	if (level <= current_level) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		char line[1024];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		fprintf(stderr, "[%5lld.%06ld] granted %s: %s\n", (long long)ts.tv_sec,
			ts.tv_nsec / 1000, tags[level & 7], line);
	}
	errno = saved;
}
