/*
 * The broker's objects and how they own each other.
 *
 *   domain      exists while a file or claim acts as it, while declared, or
 *               while one of its grants is still mapped elsewhere ("dying").
 *   file        one open device: its device connection, plus every mapping
 *               made through it. Released when both are gone, as the
 *               kernel releases a file after the last fd and the last VMA.
 *   allocation  one gntalloc ALLOC_GREF call: one sealed memfd, its pages.
 *               Pages are never reused for another grant.
 *   grant entry a slot of the granting domain's table, pointing at a page.
 *   gntdev_map  one MAP_GRANT_REF slot of a gntdev file.
 *   mapping     one mmap(): the broker keeps the read end of a pipe whose
 *               write end (the token) lives in the client's processes; the
 *               last close of the token is the last munmap.
 */
#ifndef GRANTED_BROKER_INTERNAL_H
#define GRANTED_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "broker.h"
#include "list.h"
#include "log.h"
#include "protocol.h"
#include "xen_abi.h"

#define GT_FRAME_ENTRIES 512u /* v1 entries per 4 KiB grant frame */

struct conn;
struct file;
struct evtchn_file;
struct xs_server;

enum grant_state {
	GRANT_FREE = 0,
	GRANT_ACTIVE = GR_GRANT_ACTIVE,
	GRANT_ENDING = GR_GRANT_ENDING,
};

struct grant_entry {
	struct gntalloc_page *page; /* NULL when free */
	uint32_t mapcount;	    /* live mappings by the grantee */
	uint16_t grantee;
	uint8_t state;
	uint8_t readonly : 1;
	uint8_t queued : 1; /* in broker->ending */
	uint64_t end_at_ns; /* GRANT_ENDING with mapcount 0: when it ends */
};

struct domain {
	struct broker *b;
	uint16_t id;
	unsigned claims; /* files and claim connections acting as this domain */
	bool declared;

	/* Grant table: refs below gt_size exist ("in range"); refs are handed
	 * out from GNTTAB_NR_RESERVED_ENTRIES upwards, freed ones reused LIFO. */
	struct grant_entry *gt;
	uint32_t gt_size;
	uint32_t gt_next;
	uint32_t *free_refs;
	uint32_t nfree, free_cap;
	uint32_t grants_used; /* entries not free */

	uint32_t alloc_pages; /* gntalloc pages counted against the limit */
	uint32_t maptrack;    /* grant pages this domain has mapped */
	uint32_t mappings;    /* mmaps held (quota max-mappings) */
	uint32_t map_refs;    /* refs in gntdev maps (quota max-map-refs) */
	unsigned queued_fds;  /* fds in replies queued to its connections */

	/* Event channels: ports[1 .. nports) (port 0 is reserved). */
	struct port *ports;
	uint32_t nports;
	uint32_t ports_used;
	uint32_t virq_port[24];
};

struct port {
	uint8_t state; /* enum gr_port_state */
	bool bound;    /* held by an evtchn file's binding */
	uint16_t remote_dom;
	uint32_t remote_port;
	uint32_t virq;
	unsigned refs; /* the binding + unmap notifications */
	int doorbell;  /* eventfd; the broker keeps a copy while the port is open */
	struct evtchn_file *owner;
};

struct evtchn_file {
	struct file *f;
	int shm_fd;
	size_t shm_len;
	struct gr_ev_shared *shm;
	uint32_t *gen;
	uint8_t *masked;
};

struct allocation {
	struct domain *owner;
	int memfd; /* read-write, size sealed */
	int ro_fd; /* read-only reopen, made on first need */
	uint32_t npages;
	uint32_t live; /* pages not yet dead (see gntalloc_page) */
	uint16_t grantee;
	bool writable;
	struct gntalloc_page *pages;
};

/* A page is dead once the gntalloc side let go (users == 0) and its grant
 * entry is free; the allocation goes when all its pages are dead. */
struct gntalloc_page {
	struct allocation *alloc;
	uint32_t idx; /* page within the allocation */
	uint32_t ref;
	uint64_t file_index;
	uint32_t users; /* 1 while in the file's list + 1 per mapping */
	bool in_file;
	bool granted;
	bool dead;
	uint8_t notify_flags;
	uint16_t notify_byte;
	uint32_t notify_port;
};

struct mapped_grant {
	struct domain *dom; /* NULL: this page failed to map */
	uint32_t ref;
};

struct gntdev_map {
	struct file *file;
	uint64_t index; /* pages */
	uint32_t count;
	bool listed;
	bool in_use;
	bool readonly;
	bool over_quota; /* a predicted MAP beyond max-map-refs: mmap says ENOMEM */
	unsigned users;	 /* 1 while listed + 1 per mapping */
	struct gr_grant_ref *refs;
	struct mapped_grant *mapped; /* after mmap */
	uint32_t nmapped;
	uint8_t notify_flags;
	uint64_t notify_offset; /* byte within the map */
	uint32_t notify_port;
};

struct mapping {
	uint64_t id;
	struct file *file;
	struct list link; /* file->mappings */
	int token_fd;	  /* read end; HUP when the client's last copy closes */
	struct loop_source *src;
	pid_t pid;
	bool writable;
	struct gntalloc_page **pages; /* gntalloc */
	uint32_t npages;
	struct gntdev_map *map; /* gntdev */
};

struct file {
	struct broker *b;
	uint64_t id;
	enum gr_kind kind;
	struct domain *dom;
	struct conn *conn; /* the device connection; NULL once it closed */
	ino_t client_ino;  /* the client's socket, proof for ATTACH */
	unsigned refs;	   /* device connection + mappings */
	struct list link;  /* broker->files */
	struct list attached;
	struct list mappings;
	/* gntalloc */
	uint64_t next_index;
	struct gntalloc_page **pages; /* sorted by file_index */
	uint32_t npages, pages_cap;
	/* gntdev */
	struct gntdev_map **maps; /* sorted by index */
	uint32_t nmaps, maps_cap;
	/* evtchn */
	struct evtchn_file *ev;
};

enum conn_role {
	CONN_NEW,
	CONN_DEVICE,
	CONN_ATTACHED,
	CONN_ADMIN,
	CONN_CLAIM,
	CONN_CONTROL,
};

/* Who is at the other end: SO_PEERCRED and SO_PEERGROUPS at connect. */
struct conn_cred {
	struct ucred cred;
	gid_t *groups;
	unsigned ngroups;
};

struct outmsg {
	struct outmsg *next;
	size_t len;
	unsigned nfds;
	int fds[GR_MSG_FDS_MAX];
	char data[];
};

struct conn {
	struct broker *b;
	int fd;
	struct loop_source *src;
	struct list link;      /* broker->conns */
	struct list file_link; /* file->attached, for attach connections */
	enum conn_role role;
	struct conn_cred peer;
	struct file *file;
	struct domain *claim;
	bool dead;
	struct outmsg *out_head, **out_tail;
	size_t out_bytes;
	unsigned out_fds; /* fds held by the queued replies */
	/* a MAP_GRANT_REF whose refs are still arriving */
	struct gr_grant_ref *pending_refs;
	uint32_t pending_count, pending_have, pending_seq, pending_flags;
	uint64_t pending_index;
	bool pending_noreply;
};

struct uid_count {
	uid_t uid;
	unsigned conns;
};

struct ending_grant {
	struct domain *dom;
	uint32_t ref;
};

struct broker {
	struct loop *loop;
	struct broker_config cfg;
	int listen_fd;
	struct loop_source *listen_src;
	struct domain **domains; /* indexed by domid, DOMID_FIRST_RESERVED slots */
	struct list conns;
	struct list dead_conns; /* killed this round, freed after dispatch */
	struct list files;
	uid_t uid;		/* the broker's own user: the embedded policy */
	struct uid_count *uids; /* connections per user */
	unsigned nuids;
	unsigned nconns, nfiles, nallocs, nmappings;
	uint64_t next_file_id, next_mapping_id;
	int timer_fd;
	int reserve_fd;	       /* spent to refuse a client when out of fds */
	bool listening;	       /* false while out of fds without a reserve */
	unsigned long refused; /* clients refused since the last log line */
	uint64_t refused_logged_ns;
	struct loop_source *timer_src;
	int epoch_fd, epoch_ro_fd; /* the grant epoch page (copy.c) */
	uint32_t *epoch;
	size_t epoch_len;
	struct ending_grant *ending; /* grants waiting for their deferred end */
	uint32_t nending, ending_cap;
	bool stop;
	uint64_t idle_since_ns;
	struct xs_server *xs; /* the xenstore service, if served */
	int xs_listen_fd;
	struct loop_source *xs_src;
};

uint64_t now_ns(void);
/* accept() failed with EMFILE/ENFILE on listen_fd: refuse one client. */
void broker_refuse_client(struct broker *b, int listen_fd);

/* domain.c */
struct domain *domain_get(struct broker *b, uint16_t id);
/* Finds or creates; -EINVAL for a reserved id, -ENOMEM. */
int domain_claim(struct broker *b, uint16_t id, struct domain **out);
void domain_unclaim(struct domain *d);
/* -EMFILE if the domain has max-files open already. */
int domain_quota_files(struct broker *b, uint16_t id);
/* Frees the domain if nothing keeps it any more. */
void domain_maybe_free(struct domain *d);
bool domain_dying(const struct domain *d);
/* Hands out a ref for page; -ENOSPC when the table is full. */
int grant_alloc(struct domain *d, struct gntalloc_page *page, uint16_t grantee, bool readonly,
		uint32_t *ref);
/* The granter ends access: freed now, or deferred while still mapped. */
void grant_end(struct domain *d, uint32_t ref);
/* Looks up an entry for mapping or copying: NULL if out of range or free. */
struct grant_entry *grant_lookup(struct domain *d, uint32_t ref);
void grant_map_get(struct domain *d, uint32_t ref);
void grant_map_put(struct domain *d, uint32_t ref);
void grants_expire(struct broker *b);
/* Ends every grant waiting for its delay (shutdown). */
void grants_expire_all(struct broker *b);
void broker_arm_timer(struct broker *b);

/* alloc.c */
/* A memfd of len bytes, sealed against resizing, mode 0400 (see there). */
int memfd_sealed(const char *name, size_t len);
/* A new read-only open of memfd fd, or -errno. */
int memfd_reopen_ro(int fd);
int allocation_create(struct domain *owner, uint32_t npages, uint16_t grantee, bool writable,
		      struct allocation **out);
/* The fd to hand to a client: the rw memfd, or the read-only reopen. */
int allocation_fd(struct allocation *a, bool writable);
/* Called when a page may have become dead. */
void page_maybe_dead(struct gntalloc_page *p);
int page_clear_byte(struct gntalloc_page *p, uint32_t byte);

/*
 * conn.c. Request handlers return a negative errno (the reply's result),
 * 0 (reply with result 0), GR_REPLIED (they sent the reply themselves), or
 * -EPROTO for a message no correct client sends: the connection is closed.
 * Replies are queued; a client that stops reading is disconnected, never
 * waited for.
 */
#define GR_REPLIED 1
void conn_reply(struct conn *c, const struct gr_hdr *req, int32_t result, const void *payload,
		size_t len, const int *fds, unsigned nfds);
void conn_reply_more(struct conn *c, const struct gr_hdr *req, const void *payload, size_t len,
		     const int *fds, unsigned nfds);
/* An unsolicited message (op, seq 0) to a client. */
void conn_send_event(struct conn *c, uint16_t op, const void *payload, size_t len, const int *fds,
		     unsigned nfds);
void conn_kill(struct conn *c, const char *why);

/* A reply made of fixed-size rows, split over messages as needed. */
struct row_stream {
	struct conn *c;
	const struct gr_hdr *h;
	size_t row_size;
	uint32_t n, per_msg;
	char *buf;
};
int rows_begin(struct row_stream *s, struct conn *c, const struct gr_hdr *h, size_t row_size);
/* The next zeroed row to fill; NULL only if the stream could not start. */
void *rows_next(struct row_stream *s);
/* Sends the rest; returns GR_REPLIED. */
int rows_end(struct row_stream *s);

/* file.c */
int file_create(struct broker *b, enum gr_kind kind, struct domain *dom, struct file **out);
void file_put(struct file *f);

/* gntalloc.c */
int gntalloc_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p,
		    size_t len);
void gntalloc_release(struct file *f);
void gntalloc_page_put(struct gntalloc_page *p);
int gntalloc_mmap(struct conn *c, struct file *f, const struct gr_hdr *h, const struct gr_mmap *m);

/* gntdev.c */
int gntdev_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p,
		  size_t len);
void gntdev_release(struct file *f);
void gntdev_map_put(struct gntdev_map *m);
int gntdev_mmap(struct conn *c, struct file *f, const struct gr_hdr *h, const struct gr_mmap *m);

/* mapping.c */
int mapping_create(struct file *f, struct conn *c, struct mapping **out, int *token_out);
void mapping_release(struct mapping *m);
int mapping_munmap(struct conn *c, struct file *f, const struct gr_hdr *h,
		   const struct gr_munmap *m);
/* Builds and sends the MMAP reply: the token, and runs over the pages. */
struct run_page {
	struct allocation *alloc;
	uint32_t idx;
};
int mapping_send(struct conn *c, const struct gr_hdr *h, struct mapping *m, int token,
		 const struct run_page *pages, uint32_t npages, bool writable);
void mapping_abort(struct mapping *m, int token);

/* copy.c */
int epoch_init(struct broker *b);
void epoch_fini(struct broker *b);
/* A grant of domid ended, or the domain died: cached copy answers go. */
void epoch_bump(struct broker *b, uint16_t domid);
int copy_refs(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len);

/* admin.c */
int admin_handle(struct conn *c, const struct gr_hdr *h, const void *p, size_t len);

/* xenstore.c: a domain got its first process (alive) or lost its last. */
void xenstore_domain_alive(struct broker *b, uint16_t domid, bool alive);
void broker_xenstore_fini(struct broker *b);

/* policy.c */
/* 0 if the peer may act as domid, else -EACCES (-EINVAL: reserved id). */
int policy_check_domain(const struct broker *b, const struct conn_cred *peer, uint16_t domid);
int policy_check_admin(const struct broker *b, const struct conn_cred *peer);

#endif
