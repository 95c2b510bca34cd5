/*
 * The broker as a library: `granted` (broker/main.c) is a thin main around
 * it, and the unit tests run it in-process over socketpairs.
 *
 * The broker plays the hypervisor: domains, their grant tables, mappings of
 * grants, event channels, and every limit. Clients reach it only through the
 * protocol of common/protocol.h. It holds all authority: a client gets memory
 * only as an fd the broker sends, and only for grants made to its domain.
 *
 * Errors are negative errno values. The broker never exits on bad input from
 * a client: the offending connection is closed and the rest carries on.
 */
#ifndef GRANTED_BROKER_H
#define GRANTED_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct broker;
struct loop;
struct policy;

struct broker_config {
	uint32_t max_grant_entries;  /* per granting domain; Xen: 64 frames = 32768 */
	uint32_t max_maptrack;	     /* grant pages one domain may map; Xen: 262144 */
	uint32_t gntalloc_limit;     /* gntalloc pages per domain; Linux: 1024 */
	uint32_t gntdev_map_limit;   /* refs per MAP_GRANT_REF; Linux: 65536 */
	uint32_t max_ports;	     /* event channels per domain; libxl: 1023 */
	uint32_t grant_end_delay_ms; /* Linux's deferred end of a grant still mapped: ~1 s */
	uint32_t idle_exit_ms;	     /* exit after this long without clients; 0: never */
	uint32_t max_connections;    /* per uid */
	/* Per-domain quotas on what a domain can make the broker hold. */
	uint32_t max_files;    /* open device files and claims (EMFILE at open) */
	uint32_t max_mappings; /* mmaps of grant devices (ENOMEM at mmap) */
	uint32_t max_map_refs; /* refs recorded by MAP_GRANT_REF (ENOMEM) */
	int log_level;	       /* LOG_ERR .. LOG_DEBUG */
	uint16_t declared[64]; /* domains that exist without processes */
	unsigned ndeclared;
	const struct policy *policy; /* NULL: the embedded default */
	char policy_path[256];	     /* set by the "policy" key; main loads it */
};

/*
 * Loads a policy file (granted(8), POLICY). On failure *line and err say
 * where and what. The policy must outlive every broker using it.
 */
int policy_load(const char *path, struct policy **out, unsigned *line, char *err, size_t errlen);
void policy_free(struct policy *p);

/* Fills cfg with the defaults above. */
void broker_config_defaults(struct broker_config *cfg);

/*
 * Parses a config file of "key = value" lines (see granted(8)). Unknown keys
 * and bad values are errors; *line tells where. Returns 0 or -errno.
 */
int broker_config_load(struct broker_config *cfg, const char *path, unsigned *line);
/* Sets one key, as the config file and the command line options do. */
int broker_config_set(struct broker_config *cfg, const char *key, const char *value);

/*
 * Creates a broker that accepts clients on listen_fd (may be -1: clients are
 * then added with broker_add_client). listen_fd is not consumed.
 */
int broker_create(const struct broker_config *cfg, int listen_fd, struct broker **out);
/* Closes every connection and frees everything. NULL is accepted. */
void broker_destroy(struct broker *b);

/*
 * Serves granted's xenstore on listen_fd (a listening SOCK_STREAM socket,
 * not consumed): the broker's policy decides which domain each connection
 * may be, and domains are introduced and released with their processes.
 */
int broker_serve_xenstore(struct broker *b, int listen_fd);

/* Hands a connected SOCK_SEQPACKET socket to the broker (consumed; made
 * non-blocking). */
int broker_add_client(struct broker *b, int fd);

/* The loop, so that main can add its signalfd. */
struct loop *broker_loop(struct broker *b);

/* Runs until broker_stop() or the idle timeout. Returns 0 or -errno. */
int broker_run(struct broker *b);
/* One round of the loop; for in-process tests. */
int broker_dispatch(struct broker *b, int timeout_ms);
void broker_stop(struct broker *b);

/* Counters for tests and grantctl. */
struct broker_stats {
	unsigned connections;
	unsigned files;
	unsigned allocations; /* memfds held */
	unsigned mappings;
	unsigned grants;
	unsigned domains;
};
void broker_get_stats(const struct broker *b, struct broker_stats *st);

#endif
