/*
 * The broker's and grantctl's log: one line per event on stderr, syslog
 * levels. Logging preserves errno. The client library does not use this: it
 * is silent unless GRANTED_DEBUG is set (lib/debug.c).
 */
#ifndef GRANTED_LOG_H
#define GRANTED_LOG_H

#include <syslog.h>

void log_set_level(int level);
int log_get_level(void);
/* Parses "error", "warning", "info", "debug" (or 3..7); -1 if unknown. */
int log_parse_level(const char *s);
void log_printf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_printf(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_printf(LOG_WARNING, __VA_ARGS__)
#define log_info(...)  log_printf(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_printf(LOG_DEBUG, __VA_ARGS__)

#endif
