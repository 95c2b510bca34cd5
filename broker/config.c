/*
 * The broker's settings: defaults, "key = value" config files and the same
 * keys from the command line (granted(8) lists them).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int broker_config_set(struct broker_config *cfg, const char *key, const char *value)
{
	static const struct {
		const char *key;
		size_t off;
		uint32_t min, max;
	} keys[] = {
		{ "max-grant-entries", offsetof(struct broker_config, max_grant_entries),
		  GNTTAB_NR_RESERVED_ENTRIES + 1, 1u << 24 },
		{ "max-maptrack", offsetof(struct broker_config, max_maptrack), 0, 1u << 26 },
		{ "gntalloc-limit", offsetof(struct broker_config, gntalloc_limit), 0, 1u << 24 },
		{ "gntdev-map-limit", offsetof(struct broker_config, gntdev_map_limit), 1,
		  1u << 24 },
		{ "max-ports", offsetof(struct broker_config, max_ports), 1, 131071 },
		{ "grant-end-delay-ms", offsetof(struct broker_config, grant_end_delay_ms), 0,
		  3600000 },
		{ "idle-exit-ms", offsetof(struct broker_config, idle_exit_ms), 0, UINT32_MAX },
		{ "max-connections", offsetof(struct broker_config, max_connections), 1, 1u << 20 },
		{ "max-files", offsetof(struct broker_config, max_files), 1, 1u << 20 },
		{ "max-mappings", offsetof(struct broker_config, max_mappings), 1, 1u << 24 },
		{ "max-map-refs", offsetof(struct broker_config, max_map_refs), 1, 1u << 28 },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(key, keys[i].key) == 0)
			return parse_u32(value, keys[i].min, keys[i].max,
					 (uint32_t *)((char *)cfg + keys[i].off));
	}
	if (strcmp(key, "log-level") == 0) {
		int level = log_parse_level(value);
		if (level < 0)
			return -EINVAL;
		cfg->log_level = level;
		return 0;
	}
	if (strcmp(key, "policy") == 0) {
		if (!*value || strlen(value) >= sizeof(cfg->policy_path))
			return -EINVAL;
		strcpy(cfg->policy_path, value);
		return 0;
	}
	if (strcmp(key, "declare-domain") == 0) {
		uint32_t id;
		if (parse_u32(value, 0, DOMID_FIRST_RESERVED - 1, &id) < 0)
			return -EINVAL;
		if (cfg->ndeclared == sizeof(cfg->declared) / sizeof(cfg->declared[0]))
			return -E2BIG;
		cfg->declared[cfg->ndeclared++] = (uint16_t)id;
		return 0;
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int broker_config_load(struct broker_config *cfg, const char *path, unsigned *line)
{
	FILE *fp = fopen(path, "re");
	char buf[512];
	int r = 0;
	*line = 0;
	if (!fp)
		return -errno;
	while (fgets(buf, sizeof(buf), fp)) {
		(*line)++;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(buf);
		if (!*s)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		r = broker_config_set(cfg, trim(s), trim(eq + 1));
		if (r < 0)
			break;
	}
	fclose(fp);
	return r;
}
