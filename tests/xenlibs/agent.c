/*
 * xenlibs-agent: one Xen domain's process driving Debian's unmodified
 * libxengnttab, libxenevtchn and libxentoolcore, one command per line on
 * stdin (run.sh runs it under `grantctl run --domid N`). Every command
 * prints exactly one result line, then "@@end"; the libraries' own messages
 * go to stderr, which run.sh merges into the same pipe, so the transcript
 * shows them in order. Only deterministic text is printed: refs and ports
 * are kept in files under $XL_VARS and named, never printed.
 *
 *   gt_open | gt_close | gs_open | gs_close | ev_open | ev_close
 *   share V DOM N rw|ro                  xengntshr_share_pages
 *   share_notify V DOM rw|ro OFF PORT    xengntshr_share_page_notify
 *   unshare V                            xengntshr_unshare
 *   map V DOM REFS rw|ro                 xengnttab_map_domain_grant_refs
 *   maps V rw|ro DOM:REF...              xengnttab_map_grant_refs
 *   map1 V DOM REF rw|ro                 xengnttab_map_grant_ref
 *   map_notify V DOM REF rw|ro OFF PORT  xengnttab_map_grant_ref_notify
 *   unmap V [COUNT]                      xengnttab_unmap
 *   unmap_null                           xengnttab_unmap(NULL)
 *   munmap V                             plain munmap(2)
 *   put V PAGE OFF TEXT | get V PAGE OFF LEN
 *   copy SRC DST LEN [SRC DST LEN]...    xengnttab_grant_copy; SRC/DST are
 *                                        gref:DOM:REF:OFF or local:V:PAGE:OFF
 *   setmax N                             xengnttab_set_max_grants
 *   dmabuf_export DOM REFS               xengnttab_dmabuf_exp_from_refs
 *   bind_unbound P DOM | bind_inter P DOM RPORT | notify PORT | unbind PORT
 *   unmask PORT | pending MS | restrict_ev DOM | restrict_all DOM
 *   exit
 * Values: a number, -1, or [@]NAME (all numbers stored under NAME) or
 * [@]NAME.I (the I-th). "buf" is a local 2-page buffer usable as an area.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoolcore.h>

#define PAGE 4096
#define MAXV 64
#define MAXN 16

static xengnttab_handle *gt;
static xengntshr_handle *gs;
static xenevtchn_handle *ev;
static const char *vars_dir;

/* Mapped or shared areas by name. */
static struct area {
	char name[32];
	uint8_t *addr;
	uint32_t count;
} areas[MAXV];

/* Ports this process bound, by name (to name what pending() returns). */
static struct port {
	char name[32];
	uint32_t port;
} ports[MAXV];

static uint8_t buf[2 * PAGE];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void say_err(const char *what, int e)
{
	const char *n = strerrorname_np(e);
	say("%s %s", what, n ? n : "?");
}

static struct area *area_find(const char *name)
{
	for (int i = 0; i < MAXV; i++)
		if (areas[i].addr && strcmp(areas[i].name, name) == 0)
			return &areas[i];
	return NULL;
}

static void area_set(const char *name, void *addr, uint32_t count)
{
	struct area *a = area_find(name);
	for (int i = 0; !a && i < MAXV; i++)
		if (!areas[i].addr)
			a = &areas[i];
	if (!a)
		abort();
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->addr = addr;
	a->count = count;
}

static void vars_store(const char *name, const uint32_t *v, int n)
{
	char path[512], tmp[520];
	snprintf(path, sizeof(path), "%s/%s", vars_dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		abort();
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%u", i ? " " : "", v[i]);
	fprintf(f, "\n");
	fclose(f);
	rename(tmp, path);
}

/* Parses a value list: number, -1 or @NAME[.I]. Returns the count or -1. */
static int values(const char *s, uint32_t *out, int max)
{
	if (s[0] == '@')
		s++;
	else if ((s[0] >= '0' && s[0] <= '9') || s[0] == '-') {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 0);
		if (errno || *end || !*s)
			return -1;
		out[0] = (uint32_t)v;
		return 1;
	}
	char name[64], path[512];
	snprintf(name, sizeof(name), "%s", s);
	char *dot = strchr(name, '.');
	int idx = -1;
	if (dot) {
		*dot = '\0';
		idx = atoi(dot + 1);
	}
	snprintf(path, sizeof(path), "%s/%s", vars_dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	uint32_t all[MAXN * 4];
	int n = 0;
	unsigned v;
	while (n < (int)(sizeof(all) / sizeof(all[0])) && fscanf(f, "%u", &v) == 1)
		all[n++] = v;
	fclose(f);
	if (idx >= 0) {
		if (idx >= n)
			return -1;
		out[0] = all[idx];
		return 1;
	}
	if (n > max)
		return -1;
	memcpy(out, all, n * sizeof(all[0]));
	return n;
}

static bool value(const char *s, uint32_t *out)
{
	return values(s, out, 1) == 1;
}

static int prot_of(const char *s)
{
	if (strcmp(s, "rw") == 0)
		return PROT_READ | PROT_WRITE;
	if (strcmp(s, "ro") == 0)
		return PROT_READ;
	return -1;
}

static const char *port_name(uint32_t p)
{
	for (int i = 0; i < MAXV; i++)
		if (ports[i].name[0] && ports[i].port == p)
			return ports[i].name;
	return NULL;
}

/* A port number names the port bound last with it. */
static void port_forget(uint32_t p)
{
	for (int i = 0; i < MAXV; i++)
		if (ports[i].name[0] && ports[i].port == p)
			ports[i].name[0] = '\0';
}

static void port_set(const char *name, uint32_t p)
{
	int free_slot = -1;
	port_forget(p);
	for (int i = 0; i < MAXV; i++) {
		if (ports[i].name[0] && strcmp(ports[i].name, name) == 0) {
			ports[i].port = p;
			goto store;
		}
		if (!ports[i].name[0] && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		abort();
	snprintf(ports[free_slot].name, sizeof(ports[0].name), "%s", name);
	ports[free_slot].port = p;
store:
	vars_store(name, &p, 1);
}

/* A byte address in an area (or buf): V PAGE OFF. */
static uint8_t *addr_of(const char *v, const char *page, const char *off, size_t len)
{
	size_t pg = strtoul(page, NULL, 0), o = strtoul(off, NULL, 0);
	if (strcmp(v, "buf") == 0)
		return pg * PAGE + o + len <= sizeof(buf) ? buf + pg * PAGE + o : NULL;
	struct area *a = area_find(v);
	if (!a || pg * PAGE + o + len > (size_t)a->count * PAGE)
		return NULL;
	return a->addr + pg * PAGE + o;
}

/* "gref:DOM:REF:OFF" or "local:V:PAGE:OFF" into one side of a segment. */
static bool copy_side(char *s, union xengnttab_copy_ptr *p, bool *gref)
{
	char *f[4];
	int n = 0;
	for (char *tok = strtok(s, ":"); tok && n < 4; tok = strtok(NULL, ":"))
		f[n++] = tok;
	if (n != 4)
		return false;
	if (strcmp(f[0], "gref") == 0) {
		uint32_t dom, ref;
		if (!value(f[1], &dom) || !value(f[2], &ref))
			return false;
		p->foreign.domid = (uint16_t)dom;
		p->foreign.ref = ref;
		p->foreign.offset = (uint16_t)strtoul(f[3], NULL, 0);
		*gref = true;
		return true;
	}
	if (strcmp(f[0], "local") == 0) {
		/* Bounds are the library's and kernel's business, not ours:
		 * only the start must lie in the area. */
		p->virt = addr_of(f[1], f[2], f[3], 0);
		*gref = false;
		return p->virt != NULL;
	}
	return false;
}

static void print_text(const uint8_t *p, size_t n)
{
	char out[4 * 256 + 3];
	size_t k = 0;
	out[k++] = '\'';
	for (size_t i = 0; i < n && i < 256; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '\'')
			out[k++] = (char)p[i];
		else
			k += (size_t)sprintf(out + k, "\\x%02x", p[i]);
	}
	out[k++] = '\'';
	out[k] = '\0';
	say("%s", out);
}

#define NEED(cond)                                                                                 \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			say("usage error");                                                        \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void result_ptr(const char *name, void *p, uint32_t count)
{
	if (!p) {
		say_err("NULL", errno);
		return;
	}
	area_set(name, p, count);
	say("ok");
}

static void result_int(int r)
{
	if (r < 0)
		say_err("-1", errno);
	else
		say("ok");
}

static void run(int argc, char **argv)
{
	const char *c = argv[0];
	uint32_t u[MAXN], dom, ref, off, port;
	int prot;

	if (strcmp(c, "gt_open") == 0) {
		gt = xengnttab_open(NULL, 0);
		say(gt ? "ok" : "NULL");
	} else if (strcmp(c, "gt_close") == 0) {
		result_int(xengnttab_close(gt));
		gt = NULL;
	} else if (strcmp(c, "gs_open") == 0) {
		gs = xengntshr_open(NULL, 0);
		say(gs ? "ok" : "NULL");
	} else if (strcmp(c, "gs_close") == 0) {
		result_int(xengntshr_close(gs));
		gs = NULL;
	} else if (strcmp(c, "ev_open") == 0) {
		ev = xenevtchn_open(NULL, 0);
		say(ev ? "ok" : "NULL");
	} else if (strcmp(c, "ev_close") == 0) {
		result_int(xenevtchn_close(ev));
		ev = NULL;
	} else if (strcmp(c, "share") == 0) {
		NEED(argc == 5 && value(argv[2], &dom));
		int n = atoi(argv[3]);
		uint32_t *refs = calloc(n > 0 ? (size_t)n : 1, sizeof(*refs));
		void *p = xengntshr_share_pages(gs, dom, n, refs, strcmp(argv[4], "rw") == 0);
		int e = errno;
		if (p)
			vars_store(argv[1], refs, n < MAXN ? n : MAXN);
		free(refs);
		errno = e;
		result_ptr(argv[1], p, (uint32_t)n);
	} else if (strcmp(c, "share_notify") == 0) {
		NEED(argc == 6 && value(argv[2], &dom) && value(argv[4], &off) &&
		     value(argv[5], &port));
		void *p = xengntshr_share_page_notify(gs, dom, &ref, strcmp(argv[3], "rw") == 0,
						      off, port);
		if (p)
			vars_store(argv[1], &ref, 1);
		result_ptr(argv[1], p, 1);
	} else if (strcmp(c, "unshare") == 0) {
		struct area *a = area_find(argv[1]);
		NEED(argc == 2 && a);
		int r = xengntshr_unshare(gs, a->addr, a->count);
		if (r == 0)
			a->addr = NULL;
		result_int(r);
	} else if (strcmp(c, "map") == 0) {
		int n;
		NEED(argc == 5 && value(argv[2], &dom) && (n = values(argv[3], u, MAXN)) > 0 &&
		     (prot = prot_of(argv[4])) >= 0);
		result_ptr(argv[1], xengnttab_map_domain_grant_refs(gt, (uint32_t)n, dom, u, prot),
			   (uint32_t)n);
	} else if (strcmp(c, "maps") == 0) {
		uint32_t doms[MAXN];
		int n = argc - 3;
		NEED(n > 0 && n <= MAXN && (prot = prot_of(argv[2])) >= 0);
		for (int i = 0; i < n; i++) {
			char *colon = strchr(argv[3 + i], ':');
			NEED(colon);
			*colon = '\0';
			NEED(value(argv[3 + i], &doms[i]) && value(colon + 1, &u[i]));
		}
		result_ptr(argv[1], xengnttab_map_grant_refs(gt, (uint32_t)n, doms, u, prot),
			   (uint32_t)n);
	} else if (strcmp(c, "map1") == 0) {
		NEED(argc == 5 && value(argv[2], &dom) && value(argv[3], &ref) &&
		     (prot = prot_of(argv[4])) >= 0);
		result_ptr(argv[1], xengnttab_map_grant_ref(gt, dom, ref, prot), 1);
	} else if (strcmp(c, "map_notify") == 0) {
		NEED(argc == 7 && value(argv[2], &dom) && value(argv[3], &ref) &&
		     (prot = prot_of(argv[4])) >= 0 && value(argv[5], &off) &&
		     value(argv[6], &port));
		result_ptr(argv[1], xengnttab_map_grant_ref_notify(gt, dom, ref, prot, off, port),
			   1);
	} else if (strcmp(c, "unmap") == 0) {
		struct area *a = area_find(argv[1]);
		NEED((argc == 2 || argc == 3) && a);
		uint32_t count = argc == 3 ? (uint32_t)atoi(argv[2]) : a->count;
		int r = xengnttab_unmap(gt, a->addr, count);
		if (r == 0)
			a->addr = NULL;
		result_int(r);
	} else if (strcmp(c, "unmap_null") == 0) {
		result_int(xengnttab_unmap(gt, NULL, 1));
	} else if (strcmp(c, "munmap") == 0) {
		struct area *a = area_find(argv[1]);
		NEED(argc == 2 && a);
		int r = munmap(a->addr, (size_t)a->count * PAGE);
		if (r == 0)
			a->addr = NULL;
		result_int(r);
	} else if (strcmp(c, "put") == 0) {
		NEED(argc == 5);
		uint8_t *p = addr_of(argv[1], argv[2], argv[3], strlen(argv[4]));
		NEED(p);
		memcpy(p, argv[4], strlen(argv[4]));
		say("ok");
	} else if (strcmp(c, "get") == 0) {
		NEED(argc == 5);
		size_t n = strtoul(argv[4], NULL, 0);
		uint8_t *p = addr_of(argv[1], argv[2], argv[3], n);
		NEED(p);
		print_text(p, n);
	} else if (strcmp(c, "copy") == 0) {
		int n = (argc - 1) / 3;
		NEED(n > 0 && n <= MAXN && (argc - 1) % 3 == 0);
		xengnttab_grant_copy_segment_t segs[MAXN];
		memset(segs, 0, sizeof(segs));
		for (int i = 0; i < n; i++) {
			bool sg, dg;
			uint16_t len = (uint16_t)strtoul(argv[3 + 3 * i], NULL, 0);
			NEED(copy_side(argv[1 + 3 * i], &segs[i].source, &sg) &&
			     copy_side(argv[2 + 3 * i], &segs[i].dest, &dg));
			segs[i].len = len;
			segs[i].flags = (uint16_t)((sg ? GNTCOPY_source_gref : 0) |
						   (dg ? GNTCOPY_dest_gref : 0));
			segs[i].status = 99; /* shows a status nobody wrote */
		}
		int r = xengnttab_grant_copy(gt, (uint32_t)n, segs);
		if (r < 0) {
			say_err("-1", errno);
			return;
		}
		char out[16 * MAXN] = "ok status";
		for (int i = 0; i < n; i++)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), " %d",
				 segs[i].status);
		say("%s", out);
	} else if (strcmp(c, "setmax") == 0) {
		NEED(argc == 2 && value(argv[1], &u[0]));
		result_int(xengnttab_set_max_grants(gt, u[0]));
	} else if (strcmp(c, "dmabuf_export") == 0) {
		int n;
		uint32_t fd;
		NEED(argc == 3 && value(argv[1], &dom) && (n = values(argv[2], u, MAXN)) > 0);
		int r = xengnttab_dmabuf_exp_from_refs(gt, dom, 0, (uint32_t)n, u, &fd);
		if (r == 0)
			close((int)fd);
		result_int(r);
	} else if (strcmp(c, "bind_unbound") == 0) {
		NEED(argc == 3 && value(argv[2], &dom));
		xenevtchn_port_or_error_t p = xenevtchn_bind_unbound_port(ev, dom);
		if (p >= 0)
			port_set(argv[1], (uint32_t)p);
		result_int(p);
	} else if (strcmp(c, "bind_inter") == 0) {
		NEED(argc == 4 && value(argv[2], &dom) && value(argv[3], &port));
		xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(ev, dom, port);
		if (p >= 0)
			port_set(argv[1], (uint32_t)p);
		result_int(p);
	} else if (strcmp(c, "notify") == 0) {
		NEED(argc == 2 && value(argv[1], &port));
		result_int(xenevtchn_notify(ev, port));
	} else if (strcmp(c, "unbind") == 0) {
		NEED(argc == 2 && value(argv[1], &port));
		int r = xenevtchn_unbind(ev, port);
		if (r == 0)
			port_forget(port);
		result_int(r);
	} else if (strcmp(c, "unmask") == 0) {
		NEED(argc == 2 && value(argv[1], &port));
		result_int(xenevtchn_unmask(ev, port));
	} else if (strcmp(c, "pending") == 0) {
		NEED(argc == 2);
		struct pollfd pfd = { .fd = xenevtchn_fd(ev), .events = POLLIN };
		int r;
		do
			r = poll(&pfd, 1, atoi(argv[1]));
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			say("no event");
			return;
		}
		xenevtchn_port_or_error_t p = xenevtchn_pending(ev);
		if (p < 0) {
			say_err("-1", errno);
			return;
		}
		const char *name = port_name((uint32_t)p);
		if (name)
			say("event on %s", name);
		else
			say("event on an unknown port");
	} else if (strcmp(c, "restrict_ev") == 0) {
		NEED(argc == 2 && value(argv[1], &dom));
		result_int(xenevtchn_restrict(ev, (domid_t)dom));
	} else if (strcmp(c, "restrict_all") == 0) {
		NEED(argc == 2 && value(argv[1], &dom));
		result_int(xentoolcore_restrict_all((domid_t)dom));
	} else {
		say("unknown command");
	}
}

int main(int argc, char **argv)
{
	vars_dir = getenv("XL_VARS");
	if (!vars_dir)
		vars_dir = ".";
	char line[4096];
	while (fgets(line, sizeof(line), stdin)) {
		char *av[64];
		int ac = 0;
		for (char *tok = strtok(line, " \t\n"); tok && ac < 63; tok = strtok(NULL, " \t\n"))
			av[ac++] = tok;
		if (ac == 0)
			continue;
		av[ac] = NULL;
		if (strcmp(av[0], "exit") == 0) {
			say("bye");
			say("@@end");
			return 0;
		}
		run(ac, av);
		say("@@end");
	}
	return 0;
}
