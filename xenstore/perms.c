/*
 * Node permissions, as xenstored has them: entry 0 names the owner and the
 * default for everyone else; entries 1.. grant one domain n(one), r(ead),
 * w(rite) or b(oth). The owner, dom0 and a domain whose target owns the node
 * get everything; otherwise the first entry for the domain decides, or the
 * default. Entries marked XS_PERM_IGNORE name a domain that has gone since
 * they were written, and are skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PERM_ALL (XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER)

static bool is(const struct actor *a, uint32_t id)
{
	return id == a->domid || (a->has_target && id == a->target);
}

unsigned xs_perm_for(const struct actor *a, const struct xs_perm *p, uint32_t n)
{
	if (a->priv)
		return PERM_ALL;
	if (n == 0)
		return 0;
	if (is(a, p[0].id))
		return PERM_ALL;
	for (uint32_t i = 1; i < n; i++)
		if (!(p[i].perms & XS_PERM_IGNORE) && is(a, p[i].id))
			return p[i].perms & PERM_ALL;
	return p[0].perms & PERM_ALL;
}

int xs_perms_parse(const char *s, unsigned count, struct xs_perm *out)
{
	for (unsigned i = 0; i < count; i++) {
		uint32_t bits;
		switch (s[0]) {
		case 'n':
			bits = XS_PERM_NONE;
			break;
		case 'r':
			bits = XS_PERM_READ;
			break;
		case 'w':
			bits = XS_PERM_WRITE;
			break;
		case 'b':
			bits = XS_PERM_READ | XS_PERM_WRITE;
			break;
		default:
			return -EINVAL;
		}
		/* strtol base 0 as xenstored; domids are 16-bit. */
		char *end;
		errno = 0;
		long id = strtol(s + 1, &end, 0);
		if (!s[1] || *end || errno || id < 0 || id > 0xffff)
			return -EINVAL;
		out[i] = (struct xs_perm){ .id = (uint32_t)id, .perms = bits };
		s = end + 1;
	}
	return 0;
}

int xs_perms_format(const struct xs_perm *p, uint32_t n, char *buf, size_t size)
{
	static const char letters[] = { 'n', 'r', 'w', 'b' };
	size_t len = 0;
	for (uint32_t i = 0; i < n; i++) {
		char one[16];
		int k = snprintf(one, sizeof(one), "%c%u",
				 letters[p[i].perms & (XS_PERM_READ | XS_PERM_WRITE)], p[i].id);
		if (len + (size_t)k + 1 > size)
			return -E2BIG;
		memcpy(buf + len, one, (size_t)k + 1);
		len += (size_t)k + 1;
	}
	return (int)len;
}
