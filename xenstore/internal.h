/*
 * The xenstore engine's insides, shared by its files:
 *
 *   hmap.c         string-keyed intrusive hash table
 *   store.c        node records and the versioned store (snapshots)
 *   changes.c      a set of pending changes and accesses, keyed by path
 *   perms.c        permission entries: parse, format, decide
 *   tree.c         node operations (read, write, mkdir, rm, set_perms) on a view
 *   transaction.c  transactions: start, validate, commit
 *   watch.c        watches and their events
 *   domain.c       domains: introduce, release, quotas' counters
 *   proto.c        one request: validation, dispatch, reply
 *   conn.c         connections: socket I/O and queues
 *   server.c       the public API's object
 *
 * Errors are negative errno everywhere; proto.c turns them into names.
 */
#ifndef GRANTED_XS_INTERNAL_H
#define GRANTED_XS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "xenstore.h"
#include "xs_proto.h"

/* Room for any canonical path: a relative path of a full payload below
 * "/local/domain/NNNNN/". */
#define XS_PATH_BUF (XS_PAYLOAD_MAX + 32)

/* ---- hmap.c ------------------------------------------------------------- */

struct hnode {
	struct hnode *next;
	uint32_t hash;
	const char *key;
};

struct hmap {
	struct hnode **b;
	size_t nb, n;
};

uint32_t xs_hmap_hash(const char *key);
int xs_hmap_init(struct hmap *m);
/* Frees the bucket array only; the nodes belong to the caller. */
void xs_hmap_fini(struct hmap *m);
struct hnode *xs_hmap_find(const struct hmap *m, const char *key, uint32_t hash);
/* Never fails: when growing fails the chains just get longer. n->key and
 * n->hash must be set. */
void xs_hmap_insert(struct hmap *m, struct hnode *n);
void xs_hmap_remove(struct hmap *m, struct hnode *n);

/* ---- store.c ------------------------------------------------------------ */

struct xs_perm {
	uint32_t id;
	uint32_t perms; /* XS_PERM_* */
};

/* One version of one node. Immutable once published. A tombstone records
 * a removal and has no perms. */
struct rec {
	struct rec *older; /* in the store: the next older version */
	uint64_t seq;	   /* the store's counter when published: the generation */
	bool deleted;
	uint32_t nperms, datalen, childlen;
	struct xs_perm *perms;
	char *data;
	char *children; /* childlen bytes: names, each NUL-terminated, oldest first */
};

struct rec *xs_rec_new(const struct xs_perm *perms, uint32_t nperms, const void *data,
		       uint32_t datalen, const char *children, uint32_t childlen);
struct rec *xs_rec_tombstone(void);
void xs_rec_free(struct rec *r);

#define STORE_HEAD UINT64_MAX

/*
 * The store: path -> versions, newest first. Versions that no snapshot can
 * see any more are freed as soon as possible (multi-version concurrency
 * control); with no transaction open, each path has one version.
 */
struct store_entry {
	struct hnode h;
	struct rec *top;   /* NULL only while reserved but not published */
	struct list dirty; /* in store.dirty while it holds more than it must */
	bool on_dirty;
	char path[];
};

struct snap {
	struct list link;
	uint64_t seq;
};

struct store {
	struct hmap map;
	uint64_t seq;	   /* change counter: the seq of the newest version */
	struct list snaps; /* open snapshots */
	struct list dirty;
	unsigned live; /* paths whose head is a node */
};

int xs_store_init(struct store *st);
void xs_store_fini(struct store *st);
/* The node at `path` as of snapshot `at` (or STORE_HEAD); NULL if absent. */
const struct rec *xs_store_get(const struct store *st, const char *path, uint64_t at);
/* Seq of the newest version of `path`, 0 if none is kept. */
uint64_t xs_store_head_seq(const struct store *st, const char *path);
/* Makes sure `path` has an entry, so that xs_store_publish() cannot fail. */
int xs_store_reserve(struct store *st, const char *path);
/* Publishes r (consumed) as the newest version of a reserved path. */
void xs_store_publish(struct store *st, const char *path, struct rec *r);
void xs_store_snap_begin(struct store *st, struct snap *sn);
void xs_store_snap_end(struct store *st, struct snap *sn);
/* Calls fn for each path whose head is a node. fn must not change st. */
void xs_store_foreach(const struct store *st,
		      void (*fn)(void *arg, const char *path, const struct rec *r), void *arg);

/* ---- changes.c ---------------------------------------------------------- */

/* A path touched by an operation or a transaction. */
struct change {
	struct hnode h;
	struct list order;
	struct rec *rec; /* the pending version when written (maybe a tombstone) */
	bool written;
	bool fire, exact; /* a watch event is due (exact: only watches on this very path) */
	bool existed;	  /* the node existed before */
	uint32_t old_nperms;
	struct xs_perm *old_perms; /* its perms before, for deciding who sees the event */
	char path[];
};

struct changes {
	struct hmap map;
	struct list order; /* first touch first */
	unsigned n;
};

int xs_changes_init(struct changes *c);
/* Frees every change and its pending version. */
void xs_changes_fini(struct changes *c);
struct change *xs_changes_find(const struct changes *c, const char *path);
/* Adds `path`, remembering base (the node before, or NULL). NULL: ENOMEM. */
struct change *xs_changes_add(struct changes *c, const char *path, const struct rec *base);
/* Sets the pending version of ch (consumed), freeing the previous one. */
void xs_change_set(struct change *ch, struct rec *r);

/* ---- perms.c ------------------------------------------------------------ */

/* Who performs an operation. */
struct actor {
	unsigned domid;
	bool priv; /* dom0: no permission checks, no quotas */
	bool has_target;
	unsigned target;
};

/* xenstored's perm_for_conn(): the XS_PERM_READ/WRITE/OWNER bits `a` has. */
unsigned xs_perm_for(const struct actor *a, const struct xs_perm *p, uint32_t n);
/* Parses `count` NUL-terminated "<l><id>" strings. -EINVAL if malformed. */
int xs_perms_parse(const char *s, unsigned count, struct xs_perm *out);
/* Formats as "<l><id>\0"...; returns the length or -E2BIG if over size. */
int xs_perms_format(const struct xs_perm *p, uint32_t n, char *buf, size_t size);

/* ---- tree.c ------------------------------------------------------------- */

struct xs_server;
struct tx;

/* Where an operation reads and writes: the store's head, or a transaction's
 * snapshot and overlay. An operation collects its changes in `batch` and
 * commits them all or none. */
struct view {
	struct xs_server *s;
	struct tx *tx;
	struct changes batch;
	struct actor who;
	unsigned created; /* nodes this operation created */
};

int xs_view_begin(struct view *v, struct xs_server *s, struct tx *tx, const struct actor *who);
/* Ends the operation: commit applies the batch (to the store, firing
 * watches, or into the transaction); either way the view is freed. */
int xs_view_end(struct view *v, bool commit);
int xs_view_get(struct view *v, const char *path, const struct rec **out);

/* get_node() with its permission check: 0 and *out, -ENOENT, -EACCES, ... */
int xs_tree_get(struct view *v, const char *path, unsigned perm, const struct rec **out);
int xs_tree_write(struct view *v, const char *path, const void *data, uint32_t len);
int xs_tree_mkdir(struct view *v, const char *path);
int xs_tree_rm(struct view *v, const char *path);
int xs_tree_set_perms(struct view *v, const char *path, const struct xs_perm *p, uint32_t n);
/* Removes path and its subtree with no permission check (path != "/"). */
int xs_tree_remove(struct view *v, const char *path);

/* Applies changes to the store: all or nothing; then fires their watches. */
int xs_tree_apply(struct xs_server *s, struct changes *c);

/* Parent of an absolute path ("/" for "/a" and for "@x"). buf: XS_PATH_BUF. */
void xs_path_parent(const char *path, char *buf);
/* is `path` `parent` or below it? */
bool xs_path_is_child(const char *path, const char *parent);

/* ---- transaction.c ------------------------------------------------------ */

struct conn;

struct tx {
	struct list link; /* conn.txs */
	struct conn *conn;
	uint32_t id;
	struct snap snap;
	struct changes overlay; /* every path it read or wrote */
	int own_delta;		/* nodes of its own domain it added */
	bool created;
};

int xs_tx_start(struct conn *c, uint32_t *id);
struct tx *xs_tx_find(struct conn *c, uint32_t id);
/* Ends t (always freed): commit validates and applies. -EAGAIN on conflict. */
int xs_tx_end(struct tx *t, bool commit);
void xs_tx_free(struct tx *t);
/* Records that t read path (base as of its snapshot). */
int xs_tx_access(struct tx *t, const char *path, const struct actor *who);
/* Moves an operation's batch into t's overlay: all or nothing. */
int xs_tx_merge(struct tx *t, struct changes *batch, const struct actor *who);

/* ---- watch.c ------------------------------------------------------------ */

struct watch {
	struct list link;  /* conn.watches */
	size_t prefix_len; /* stripped from event paths: relative watches */
	char *token;
	char path[];
};

int xs_watch_add(struct conn *c, const char *path, const char *token, bool relative);
int xs_watch_remove(struct conn *c, const char *path, const char *token);
void xs_watch_remove_all(struct conn *c);
/*
 * Queues events for a change of `path`: exact fires only watches on path
 * itself, else watches on path and its ancestors. A watcher gets it if it
 * may read old perms (if any), the node now (`now`, or read from the store
 * when NULL) or the node's parent.
 */
void xs_watch_fire(struct xs_server *s, const char *path, bool exact, const struct xs_perm *old,
		   uint32_t nold, const struct rec *now);

/* ---- domain.c ----------------------------------------------------------- */

struct domain {
	struct domain *next;
	unsigned domid;
	bool introduced;
	bool has_target;
	unsigned target;
	unsigned nodes, watches, txs, conns;
};

struct domain *xs_domain_find(const struct xs_server *s, unsigned domid);
/* Finds or creates; NULL on ENOMEM. */
struct domain *xs_domain_get(struct xs_server *s, unsigned domid);
void xs_domain_free_all(struct xs_server *s);
/* The wire's XS_INTRODUCE, XS_RELEASE... for a privileged peer. */
int xs_domain_wire_introduce(struct xs_server *s, unsigned domid);
int xs_domain_wire_release(struct xs_server *s, unsigned domid);
int xs_domain_wire_set_target(struct xs_server *s, unsigned domid, unsigned target);

/* ---- conn.c ------------------------------------------------------------- */

struct outmsg {
	struct outmsg *next;
	size_t len, off;
	bool event;
	char data[];
};

struct conn {
	struct list link; /* server.conns or server.zombies */
	struct xs_server *s;
	unsigned serial;
	int fd;
	struct loop_source *src;
	struct ucred peer;
	unsigned domid;
	bool fresh;    /* no message handled yet: may still claim a domain */
	bool dead;     /* closed; freed when the server is next idle */
	bool closing;  /* close once the output is sent */
	bool paused;   /* not reading: too much output queued */
	bool dropping; /* dropping watch events until the queue drains */
	char *in;
	size_t in_len;
	size_t discard; /* bytes of an oversized request still to skip */
	struct outmsg *out_head, **out_tail;
	size_t out_bytes;
	bool on_flushq;
	struct list flush_link;
	struct list watches;
	struct list txs;
	uint32_t next_txid;
};

int xs_conn_create(struct xs_server *s, int fd);
void xs_conn_destroy(struct conn *c);
/* Queues a message: header then two payload parts. */
void xs_conn_reply(struct conn *c, uint32_t type, const struct xs_hdr *req, const void *p1,
		   size_t l1, const void *p2, size_t l2);
void xs_conn_event(struct conn *c, const char *path, const char *token);
void xs_conn_flush(struct conn *c);
void xs_conn_kill(struct conn *c, const char *why);
struct actor xs_conn_actor(const struct conn *c);
const char *xs_conn_home(const struct conn *c, char *buf, size_t size);

/* ---- proto.c ------------------------------------------------------------ */

/* Handles one request; payload has a NUL at [hdr->len]. */
void xs_proto_handle(struct conn *c, const struct xs_hdr *hdr, char *payload);
const char *xs_proto_type_name(uint32_t type);

/* ---- server.c ----------------------------------------------------------- */

struct xs_server {
	struct loop *loop;
	struct xs_config cfg;
	struct xs_hooks hooks;
	void *ctx;
	struct store store;
	struct list conns;
	struct list zombies;
	struct list flushq;
	struct domain *domains[64];
	unsigned nconns, nwatches, ntxs, nintroduced;
	unsigned next_serial;
	int depth;
};

/* Brackets every entry into the engine (loop callbacks, API calls): when
 * the outermost one leaves, queued output is flushed and dead connections
 * are freed, so nothing is freed under a caller's feet. */
void xs_server_enter(struct xs_server *s);
void xs_server_leave(struct xs_server *s);
void xs_server_want_flush(struct xs_server *s, struct conn *c);

#endif
