#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "granted/granted.h"
#include "show.h"

static int list_error(ssize_t r)
{
	char path[108] = "";
	granted_socket_path(path, sizeof(path));
	if (r == -ENOENT)
		fprintf(stderr, "grantctl: no broker listens on %s\n", path);
	else if (r == -EACCES)
		fprintf(stderr, "grantctl: the broker refuses admin commands to this user\n");
	else
		fprintf(stderr, "grantctl: %s\n", strerror((int)-r));
	return 1;
}

int show_domains(bool json)
{
	struct granted_domain_info *d;
	ssize_t n = granted_list_domains(&d);
	if (n < 0)
		return list_error(n);
	if (json) {
		printf("[");
		for (ssize_t i = 0; i < n; i++)
			printf("%s\n  {\"domid\": %u, \"state\": \"%s\", \"declared\": %s, "
			       "\"files\": %u, \"file_limit\": %u, \"grants\": %u, "
			       "\"grant_limit\": %u, \"mappings\": %u, \"mapping_limit\": %u, "
			       "\"gntalloc_pages\": %u, \"gntalloc_limit\": %u, \"ports\": %u, "
			       "\"port_limit\": %u, \"mmaps\": %u, \"mmap_limit\": %u, "
			       "\"map_refs\": %u, \"map_ref_limit\": %u}",
			       i ? "," : "", d[i].domid, d[i].dying ? "dying" : "live",
			       d[i].declared ? "true" : "false", d[i].connections,
			       d[i].connection_limit, d[i].grants, d[i].grant_limit, d[i].mappings,
			       d[i].mapping_limit, d[i].alloc_pages, d[i].alloc_limit, d[i].ports,
			       d[i].port_limit, d[i].mmaps, d[i].mmap_limit, d[i].map_refs,
			       d[i].map_ref_limit);
		printf("%s]\n", n ? "\n" : "");
	} else {
		printf("%-7s %-6s %-10s %-12s %-14s %-11s %-10s %-11s %s\n", "DOMAIN", "STATE",
		       "FILES", "GRANTS", "MAPPED", "GNTALLOC", "PORTS", "MMAPS", "MAP REFS");
		for (ssize_t i = 0; i < n; i++) {
			char f[32], g[32], m[32], a[32], p[32], mm[32], mr[32];
			snprintf(f, sizeof(f), "%u/%u", d[i].connections, d[i].connection_limit);
			snprintf(g, sizeof(g), "%u/%u", d[i].grants, d[i].grant_limit);
			snprintf(m, sizeof(m), "%u/%u", d[i].mappings, d[i].mapping_limit);
			snprintf(a, sizeof(a), "%u/%u", d[i].alloc_pages, d[i].alloc_limit);
			snprintf(p, sizeof(p), "%u/%u", d[i].ports, d[i].port_limit);
			snprintf(mm, sizeof(mm), "%u/%u", d[i].mmaps, d[i].mmap_limit);
			snprintf(mr, sizeof(mr), "%u/%u", d[i].map_refs, d[i].map_ref_limit);
			printf("%-7u %-6s %-10s %-12s %-14s %-11s %-10s %-11s %s\n", d[i].domid,
			       d[i].dying ? "dying" : "live", f, g, m, a, p, mm, mr);
		}
	}
	free(d);
	return 0;
}

int show_grants(bool json)
{
	struct granted_grant_info *g;
	struct granted_mapping_info *m;
	ssize_t n = granted_list_grants(&g);
	if (n < 0)
		return list_error(n);
	ssize_t nm = granted_list_mappings(&m);
	if (nm < 0) {
		free(g);
		return list_error(nm);
	}
	if (!json)
		printf("%-8s %-6s %-8s %-6s %-7s %s\n", "GRANTER", "REF", "GRANTEE", "ACCESS",
		       "STATE", "MAPPED BY");
	else
		printf("[");
	for (ssize_t i = 0; i < n; i++) {
		if (json)
			printf("%s\n  {\"granter\": %u, \"ref\": %u, \"grantee\": %u, "
			       "\"access\": \"%s\", \"state\": \"%s\", \"mapcount\": %u, "
			       "\"mapped_by\": [",
			       i ? "," : "", g[i].granter, g[i].ref, g[i].grantee,
			       g[i].readonly ? "ro" : "rw", g[i].ending ? "ending" : "active",
			       g[i].mapcount);
		else
			printf("%-8u %-6u %-8u %-6s %-7s ", g[i].granter, g[i].ref, g[i].grantee,
			       g[i].readonly ? "ro" : "rw", g[i].ending ? "ending" : "active");
		int k = 0;
		for (ssize_t j = 0; j < nm; j++) {
			if (m[j].granter != g[i].granter || m[j].ref != g[i].ref)
				continue;
			if (json)
				printf("%s{\"domid\": %u, \"pid\": %d, \"access\": \"%s\"}",
				       k ? ", " : "", m[j].mapper, (int)m[j].pid,
				       m[j].writable ? "rw" : "ro");
			else if (m[j].pid)
				printf("%sdom%u (pid %d, %s)", k ? ", " : "", m[j].mapper,
				       (int)m[j].pid, m[j].writable ? "rw" : "ro");
			else
				printf("%sdom%u (unmapped, still held, %s)", k ? ", " : "",
				       m[j].mapper, m[j].writable ? "rw" : "ro");
			k++;
		}
		if (json)
			printf("]}");
		else
			printf("%s\n", k ? "" : "-");
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
	free(g);
	free(m);
	return 0;
}

int show_ports(bool json)
{
	static const char *const states[] = { "free", "unbound", "interdomain", "virq" };
	struct granted_port_info *p;
	ssize_t n = granted_list_ports(&p);
	if (n < 0)
		return list_error(n);
	if (!json)
		printf("%-7s %-5s %-12s %-14s %-8s %-7s %s\n", "DOMAIN", "PORT", "STATE", "REMOTE",
		       "PENDING", "MASKED", "BOUND");
	else
		printf("[");
	for (ssize_t i = 0; i < n; i++) {
		const char *st = p[i].state >= 0 && p[i].state <= 3 ? states[p[i].state] : "?";
		char remote[32];
		if (p[i].state == 3)
			snprintf(remote, sizeof(remote), "virq %u", p[i].remote_port);
		else if (p[i].state == 2)
			snprintf(remote, sizeof(remote), "dom%u:%u", p[i].remote_domid,
				 p[i].remote_port);
		else
			snprintf(remote, sizeof(remote), "dom%u", p[i].remote_domid);
		if (json)
			printf("%s\n  {\"domid\": %u, \"port\": %u, \"state\": \"%s\", "
			       "\"remote_domid\": %u, \"remote_port\": %u, \"pending\": %s, "
			       "\"masked\": %s, \"bound\": %s}",
			       i ? "," : "", p[i].domid, p[i].port, st, p[i].remote_domid,
			       p[i].remote_port, p[i].pending ? "true" : "false",
			       p[i].masked ? "true" : "false", p[i].bound ? "true" : "false");
		else
			printf("%-7u %-5u %-12s %-14s %-8s %-7s %s\n", p[i].domid, p[i].port, st,
			       remote, p[i].pending ? "yes" : "no", p[i].masked ? "yes" : "no",
			       p[i].bound ? "yes" : "no (notify)");
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
	free(p);
	return 0;
}
