/*
 * Who may act as which domain, and who may use the admin commands.
 *
 * The embedded default: the broker's own user may act as any domain
 * 0..0x7FEF and use the admin commands; everyone else is refused with
 * EACCES, and the refusal is logged. A policy file (granted(8), POLICY)
 * adds rules for other users and groups; the broker's own user keeps its
 * rights. Peers are identified by SO_PEERCRED and SO_PEERGROUPS, taken
 * when they connect.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rule {
	bool group; /* matches a group rather than a user */
	uint32_t id;
	bool admin;
	/* the domains [lo, hi] of each range */
	uint16_t (*ranges)[2];
	unsigned nranges;
};

struct policy {
	struct rule *rules;
	unsigned nrules;
};

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nrules; i++)
		free(p->rules[i].ranges);
	free(p->rules);
	free(p);
}

static int parse_id(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* "any", or ranges like "1-9,20". */
static int parse_domains(struct rule *r, char *list, char *err, size_t errlen)
{
	if (strcmp(list, "any") == 0) {
		r->ranges = malloc(sizeof(*r->ranges));
		if (!r->ranges)
			return -ENOMEM;
		r->ranges[0][0] = 0;
		r->ranges[0][1] = DOMID_FIRST_RESERVED - 1;
		r->nranges = 1;
		return 0;
	}
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		uint32_t lo, hi;
		char *dash = strchr(tok, '-');
		if (dash)
			*dash = '\0';
		if (parse_id(tok, DOMID_FIRST_RESERVED - 1, &lo) < 0 ||
		    parse_id(dash ? dash + 1 : tok, DOMID_FIRST_RESERVED - 1, &hi) < 0 || hi < lo) {
			snprintf(err, errlen, "bad domain range (domains are 0..32751)");
			return -EINVAL;
		}
		uint16_t(*v)[2] = realloc(r->ranges, (r->nranges + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->ranges = v;
		r->ranges[r->nranges][0] = (uint16_t)lo;
		r->ranges[r->nranges][1] = (uint16_t)hi;
		r->nranges++;
	}
	if (r->nranges == 0) {
		snprintf(err, errlen, "no domains given");
		return -EINVAL;
	}
	return 0;
}

/* One line: WHO NAME (domains LIST | admin). */
static int parse_rule(struct rule *r, char *line, char *err, size_t errlen)
{
	char *save = NULL;
	char *who = strtok_r(line, " \t", &save);
	char *name = strtok_r(NULL, " \t", &save);
	char *what = strtok_r(NULL, " \t", &save);
	char *list = strtok_r(NULL, " \t", &save);
	char *extra = strtok_r(NULL, " \t", &save);
	if (!who || !name || !what || extra) {
		snprintf(err, errlen, "expected: user|group|uid|gid NAME domains LIST|admin");
		return -EINVAL;
	}
	if (strcmp(who, "user") == 0) {
		struct passwd *pw = getpwnam(name);
		if (!pw) {
			snprintf(err, errlen, "no such user: %s", name);
			return -ENOENT;
		}
		r->id = pw->pw_uid;
	} else if (strcmp(who, "group") == 0) {
		struct group *gr = getgrnam(name);
		if (!gr) {
			snprintf(err, errlen, "no such group: %s", name);
			return -ENOENT;
		}
		r->group = true;
		r->id = gr->gr_gid;
	} else if (strcmp(who, "uid") == 0 || strcmp(who, "gid") == 0) {
		r->group = who[0] == 'g';
		if (parse_id(name, UINT32_MAX - 1, &r->id) < 0) {
			snprintf(err, errlen, "bad %s: %s", who, name);
			return -EINVAL;
		}
	} else {
		snprintf(err, errlen, "unknown subject '%s' (user, group, uid or gid)", who);
		return -EINVAL;
	}
	if (strcmp(what, "admin") == 0 && !list) {
		r->admin = true;
		return 0;
	}
	if (strcmp(what, "domains") == 0 && list)
		return parse_domains(r, list, err, errlen);
	snprintf(err, errlen, "expected 'domains LIST' or 'admin'");
	return -EINVAL;
}

int policy_load(const char *path, struct policy **out, unsigned *line, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	struct policy *p = calloc(1, sizeof(*p));
	char buf[512];
	int r = 0;
	*line = 0;
	err[0] = '\0';
	if (!fp || !p) {
		r = fp ? -ENOMEM : -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		goto out;
	}
	while (fgets(buf, sizeof(buf), fp)) {
		(*line)++;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		char *s = buf;
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			continue;
		s[strcspn(s, "\n")] = '\0';
		struct rule *v = realloc(p->rules, (p->nrules + 1) * sizeof(*v));
		if (!v) {
			r = -ENOMEM;
			break;
		}
		p->rules = v;
		memset(&p->rules[p->nrules], 0, sizeof(*v));
		r = parse_rule(&p->rules[p->nrules], s, err, errlen);
		p->nrules++;
		if (r < 0)
			break;
	}
out:
	if (fp)
		fclose(fp);
	if (r < 0) {
		policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}

static bool rule_matches(const struct rule *r, const struct conn_cred *cc)
{
	if (!r->group)
		return cc->cred.uid == r->id;
	if (cc->cred.gid == r->id)
		return true;
	for (unsigned i = 0; i < cc->ngroups; i++)
		if (cc->groups[i] == r->id)
			return true;
	return false;
}

int policy_check_domain(const struct broker *b, const struct conn_cred *cc, uint16_t domid)
{
	if (domid >= DOMID_FIRST_RESERVED) {
		log_warn("pid %d (uid %u) asked for reserved domain id %#x", (int)cc->cred.pid,
			 cc->cred.uid, domid);
		return -EINVAL;
	}
	if (cc->cred.uid == b->uid)
		return 0;
	const struct policy *p = b->cfg.policy;
	for (unsigned i = 0; p && i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];
		if (r->admin || !rule_matches(r, cc))
			continue;
		for (unsigned k = 0; k < r->nranges; k++)
			if (domid >= r->ranges[k][0] && domid <= r->ranges[k][1])
				return 0;
	}
	log_warn("refused: pid %d (uid %u) may not act as domain %u", (int)cc->cred.pid,
		 cc->cred.uid, domid);
	return -EACCES;
}

int policy_check_admin(const struct broker *b, const struct conn_cred *cc)
{
	if (cc->cred.uid == b->uid)
		return 0;
	const struct policy *p = b->cfg.policy;
	for (unsigned i = 0; p && i < p->nrules; i++)
		if (p->rules[i].admin && rule_matches(&p->rules[i], cc))
			return 0;
	log_warn("refused: pid %d (uid %u) may not use admin commands", (int)cc->cred.pid,
		 cc->cred.uid);
	return -EACCES;
}
