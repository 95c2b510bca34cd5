/*
 * granted's xenstore: a xenstore server engine that a host process (the
 * broker) runs on its own event loop. It speaks the xenstore wire protocol
 * (xs_proto.h) on connected stream sockets, so Debian's libxenstore,
 * xenstore-utils and python3-pyxs reach it through XENSTORED_PATH.
 *
 * Theory of operation
 *   The host creates one server on its loop, accepts connections itself and
 *   hands each one over with xs_server_add_client(). A connection whose
 *   first message is XS_CONTROL "granted-domid\0<N>\0" belongs to domain N
 *   for its whole life, if the host's may_claim hook agrees; any other first
 *   message makes it domain 0 (privileged, as every unix-socket client of
 *   xenstored is), if may_claim agrees to domain 0 for that peer. A refusal
 *   is EACCES and closes the connection. For a domain-N connection relative
 *   paths resolve under /local/domain/N and node permissions are enforced,
 *   as xenstored does for every domain but dom0.
 *   The host tells the server when a domain appears (xs_domain_introduce)
 *   and when its last process is gone (xs_domain_release).
 *
 * Conventions
 *   Every call returns 0 or a negative errno unless said otherwise. Nothing
 *   here prints except through common/log.h: each request at debug level,
 *   misbehaving peers at warning level. The server is single-threaded: call
 *   it only from the thread that runs its loop. The one callback, may_claim,
 *   runs from loop_dispatch(), never from inside a call of this API; it may
 *   call this API, except xs_server_destroy(). After fork() the child must
 *   not touch the server, not even to destroy it (that would unregister the
 *   parent's descriptors from the epoll instance they share).
 *
 * What dom0's wire requests mean here
 *   XS_INTRODUCE marks a domain introduced and fires @introduceDomain (the
 *   ring page and event channel it names are ignored); XS_RELEASE does what
 *   xs_domain_release() does but leaves /local/domain/N (dom0 owns it; the
 *   toolstack removes it); XS_IS_DOMAIN_INTRODUCED, XS_RESUME and
 *   XS_SET_TARGET behave as in xenstored. A connection may claim a domain
 *   that is not introduced; it then simply has no home nodes yet.
 */
#ifndef GRANTED_XENSTORE_H
#define GRANTED_XENSTORE_H

#include <stdint.h>

struct loop;
struct ucred;
struct xs_server;

/*
 * Limits. Zero in a field means "the default" (xenstored's value, in
 * brackets). The quotas apply to every domain but dom0, whose connections
 * are only bounded by the 4096-byte message size; the error a domain gets
 * when it hits one is xenstored's (4.17).
 */
struct xs_config {
	unsigned max_nodes_per_domain;	      /* nodes a domain owns [1000]: ENOSPC */
	unsigned max_value_size;	      /* bytes of one node's value [2048]: ENOSPC */
	unsigned max_watches_per_domain;      /* [128]: E2BIG */
	unsigned max_transactions_per_domain; /* open at once [10]: ENOSPC */
	unsigned max_perms_per_node;	      /* entries in SET_PERMS [5]: ENOSPC */
	unsigned max_nodes_per_transaction;   /* nodes one transaction touches [1024]: ENOSPC */
	unsigned max_path_length;	      /* path below /local/domain/N/ [2048]: EINVAL */
	/* Per connection, any domain: replies and events queued for a peer
	 * that does not read. Past it the server stops reading that peer's
	 * requests, and drops watch events for it (logged) [1 MiB]. */
	unsigned max_queued_bytes;
	/* Connections at once, all domains [1024]; xs_server_add_client()
	 * fails with -EMFILE past it. */
	unsigned max_connections;
};

struct xs_hooks {
	/*
	 * A connection whose first message claims domain `domid` (always below
	 * 0x7ff0), or (domid 0) one whose first message is anything else. `peer` is the SO_PEERCRED
	 * of the socket as read when it was added (pid 0 and uid/gid -1 if that failed). Returns 0
	 * to bind the connection to the domain or -EACCES to refuse: the peer then gets EACCES and
	 * the connection is closed once that reply is sent. A NULL hook refuses every claim.
	 */
	int (*may_claim)(void *ctx, const struct ucred *peer, unsigned domid);
};

/*
 * Creates a server on `loop` (not owned; it must outlive the server). cfg
 * may be NULL for the defaults; hooks may be NULL; both are copied. ctx is
 * passed to the hooks. The store starts with /, /tool/xenstored, /local/
 * domain/0/domid ("0"), @introduceDomain and @releaseDomain, all "n0".
 * Returns 0 and *out, or -ENOMEM.
 */
int xs_server_create(struct loop *loop, const struct xs_config *cfg, const struct xs_hooks *hooks,
		     void *ctx, struct xs_server **out);

/* Closes every connection and frees everything. NULL is accepted. */
void xs_server_destroy(struct xs_server *s);

/*
 * Hands over a connected SOCK_STREAM socket. The fd is consumed in every
 * case: on failure it is closed. The server makes it non-blocking and
 * CLOEXEC and registers it on the loop. -EMFILE past max_connections,
 * -ENOMEM, or the error of registering it.
 */
int xs_server_add_client(struct xs_server *s, int fd);

/*
 * Domain `domid` has appeared (its first process). Marks it introduced (so
 * XS_IS_DOMAIN_INTRODUCED answers "T") and creates what a toolstack (libxl)
 * writes for a new domain, where it is missing: /local/domain/N ("n0 rN",
 * dom0 owns it and N may read it), N/domid = "N" and N/control ("n0 rN"),
 * and N/data, device, drivers, feature, attr and error, owned by N ("nN").
 * Fires @introduceDomain if the domain was not introduced yet. Existing
 * nodes are left as they are, so a toolstack may prepare them beforehand.
 * Domain 0 always exists: for it this does nothing. -EINVAL for domid >=
 * 0x7ff0, -ENOMEM.
 */
int xs_domain_introduce(struct xs_server *s, unsigned domid);

/*
 * Domain `domid` has gone (its last process). Closes the connections still
 * bound to it (dropping their watches and transactions), removes
 * /local/domain/N and every other node N owns (xenstored's orphan removal;
 * watches fire for these as for any removal) and fires @releaseDomain if the
 * domain was introduced. Permission entries naming N stay in force: domain
 * N's next process is the same principal (the host's policy says who may be
 * N), unlike after the wire's XS_RELEASE, which retires them as xenstored
 * does. Nothing for domain 0.
 */
void xs_domain_release(struct xs_server *s, unsigned domid);

/* Counters, for tests and the host's status output. */
struct xs_stats {
	unsigned connections;  /* open connections */
	unsigned nodes;	       /* nodes in the store, @-nodes included */
	unsigned watches;      /* registered watches, all connections */
	unsigned transactions; /* open transactions, all connections */
	unsigned introduced;   /* introduced domains, dom0 included */
	uint64_t generation;   /* the store's change counter */
};
void xs_server_stats(const struct xs_server *s, struct xs_stats *out);

struct xs_domain_usage {
	unsigned nodes;	       /* nodes owned */
	unsigned watches;      /* watches of its connections */
	unsigned transactions; /* open transactions of its connections */
	unsigned connections;  /* connections bound to it */
	int introduced;	       /* 1 if introduced */
};
/* Usage of one domain; all zero for a domain the server never saw. */
void xs_domain_usage(const struct xs_server *s, unsigned domid, struct xs_domain_usage *out);

#endif
