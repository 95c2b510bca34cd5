/*
 * Who may act as which domain. The embedded default: the broker's own user
 * may claim any domain 0..0x7FEF and use the admin commands; everyone else
 * is refused with EACCES, and the refusal is logged.
 */
#include <errno.h>

#include "internal.h"

int policy_check_domain(const struct broker *b, const struct ucred *cred, uint16_t domid)
{
	if (domid >= DOMID_FIRST_RESERVED) {
		log_warn("pid %d (uid %u) asked for reserved domain id %#x", (int)cred->pid,
			 cred->uid, domid);
		return -EINVAL;
	}
	if (cred->uid == b->uid)
		return 0;
	log_warn("refused: pid %d (uid %u) may not act as domain %u", (int)cred->pid, cred->uid,
		 domid);
	return -EACCES;
}

int policy_check_admin(const struct broker *b, const struct ucred *cred)
{
	if (cred->uid == b->uid)
		return 0;
	log_warn("refused: pid %d (uid %u) may not use admin commands", (int)cred->pid, cred->uid);
	return -EACCES;
}
