/*
 * The wire protocol between clients (libgranted) and the broker.
 *
 * One SOCK_SEQPACKET connection per open device file ("device connection"),
 * plus "attach" connections for processes that hold an inherited device fd,
 * plus admin connections for grantctl. Every message starts with struct
 * gr_hdr; the payload is one fixed-width struct, optionally followed by an
 * array of fixed-width elements whose count the struct states. File
 * descriptors travel as SCM_RIGHTS on the message they belong to.
 *
 * Requests carry a sequence number the reply echoes. Replies carry the result
 * as a negative errno (the errno the kernel's driver would give) or >= 0.
 */
#ifndef GRANTED_PROTOCOL_H
#define GRANTED_PROTOCOL_H

#include <stdint.h>

#define GR_PROTO_VERSION 1u

/* Largest message either side sends or accepts, header included. */
#define GR_MSG_MAX 65536u
/* Most fds one message may carry; anything above is a protocol error. */
#define GR_MSG_FDS_MAX 32u

enum gr_kind {
	GR_KIND_GNTALLOC = 1,
	GR_KIND_GNTDEV = 2,
	GR_KIND_EVTCHN = 3,
	GR_KIND_ADMIN = 4,   /* grantctl queries; claims no domain */
	GR_KIND_CLAIM = 5,   /* keeps a domain alive (grantctl run) */
	GR_KIND_CONTROL = 6, /* a process's own: GR_OP_SYNC_FILE, no domain */
};

enum gr_op {
	/* connection setup */
	GR_OP_HELLO = 1,   /* gr_hello -> gr_hello_reply */
	GR_OP_ATTACH = 2,  /* gr_attach + fd (the device socket) -> gr_hello_reply */
	GR_OP_BARRIER = 3, /* no payload -> result 0 once everything before is done */

	/* gntalloc */
	GR_OP_ALLOC = 10,	 /* gr_alloc -> gr_alloc_reply + refs[] (stream) */
	GR_OP_DEALLOC = 11,	 /* gr_range -> result */
	GR_OP_ALLOC_NOTIFY = 12, /* gr_notify -> result */

	/* gntdev */
	GR_OP_MAP = 20,	       /* gr_map + refs[] (+ GR_OP_MAP_REFS) -> gr_map_reply */
	GR_OP_MAP_REFS = 21,   /* gr_map_refs + refs[]: continuation of a GR_OP_MAP */
	GR_OP_UNMAP = 22,      /* gr_range -> result */
	GR_OP_DEV_NOTIFY = 23, /* gr_notify -> result */

	GR_OP_COPY_REFS =
		24, /* gr_copy_refs + gr_copy_ref[] -> gr_copy_reply + rows (stream), fds */

	/* both grant devices */
	GR_OP_MMAP = 30,   /* gr_mmap -> gr_mmap_reply + runs[] (stream), fds */
	GR_OP_MUNMAP = 31, /* gr_munmap -> result, after the client dropped its token */

	/* evtchn: binding is the broker's; delivery is peer to peer */
	GR_OP_EV_BIND_UNBOUND = 50,	/* gr_ev_bind -> gr_ev_port + fd (own doorbell) */
	GR_OP_EV_BIND_INTERDOMAIN = 51, /* gr_ev_bind -> gr_ev_port + fds (own, peer's) */
	GR_OP_EV_BIND_VIRQ = 52,	/* gr_ev_bind -> gr_ev_port + fd (own) */
	GR_OP_EV_UNBIND = 53,		/* gr_ev_port_req -> result */
	GR_OP_EV_RESTRICT = 54,		/* gr_ev_bind (remote_domain) -> result */
	GR_OP_EV_PORT_INFO = 55, /* gr_ev_port_req -> gr_ev_port (+ fds: own, peer's doorbell) */

	/* control */
	GR_OP_SYNC_FILE = 60, /* gr_sync_file -> 0 once the file's connection is drained */

	/* admin */
	GR_OP_LIST_DOMAINS = 40,  /* -> stream of gr_domain_row */
	GR_OP_LIST_GRANTS = 41,	  /* -> stream of gr_grant_row */
	GR_OP_LIST_MAPPINGS = 42, /* -> stream of gr_mapping_row */
	GR_OP_LIST_PORTS = 43,	  /* -> stream of gr_port_row */
};

/* gr_hdr.flags */
#define GR_HDR_NOREPLY 0x1u /* request: the sender will not read a reply */
#define GR_HDR_MORE    0x2u /* reply: further messages of this reply follow */

struct gr_hdr {
	uint16_t op;
	uint16_t flags;
	uint32_t size; /* whole message, header included */
	uint32_t seq;  /* request: chosen by the client; reply: echoed */
	int32_t result;
};
_Static_assert(sizeof(struct gr_hdr) == 16, "gr_hdr");

/* IN. First message of a device, admin or claim connection. */
struct gr_hello {
	uint32_t version;
	uint16_t kind;
	uint16_t domid; /* the domain the connection acts as */
	uint32_t flags; /* GR_HELLO_* */
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_hello) == 16, "gr_hello");
#define GR_HELLO_EXCLUSIVE 0x1u /* reserved */

/* IN. First message of an attach connection; carries the device socket. */
struct gr_attach {
	uint32_t version;
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_attach) == 8, "gr_attach");

/* OUT. Reply to HELLO and ATTACH. */
struct gr_hello_reply {
	uint32_t version;
	uint16_t kind;
	uint16_t domid;
	uint64_t file_id;   /* broker-unique id of the open file */
	uint32_t map_limit; /* refs per MAP_GRANT_REF (checked before the refs are read) */
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_hello_reply) == 24, "gr_hello_reply");

/* IN. IOCTL_GNTALLOC_ALLOC_GREF. */
struct gr_alloc {
	uint16_t grantee;
	uint16_t flags; /* GNTALLOC_FLAG_WRITABLE; other bits ignored */
	uint32_t count;
};
_Static_assert(sizeof(struct gr_alloc) == 8, "gr_alloc");

/* OUT. Each message of the reply stream carries refs [first, first + n). */
struct gr_alloc_reply {
	uint64_t index;
	uint32_t count;
	uint32_t first;
	uint32_t n;
	uint32_t pad;
	/* uint32_t refs[n] */
};
_Static_assert(sizeof(struct gr_alloc_reply) == 24, "gr_alloc_reply");

/* IN. DEALLOC_GREF and UNMAP_GRANT_REF. */
struct gr_range {
	uint64_t index;
	uint32_t count;
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_range) == 16, "gr_range");

/* IN. SET_UNMAP_NOTIFY of either device. */
struct gr_notify {
	uint64_t index;
	uint32_t action;
	uint32_t port;
};
_Static_assert(sizeof(struct gr_notify) == 16, "gr_notify");

struct gr_grant_ref {
	uint32_t domid;
	uint32_t ref;
};
_Static_assert(sizeof(struct gr_grant_ref) == 8, "gr_grant_ref");

/*
 * IN. IOCTL_GNTDEV_MAP_GRANT_REF. `n` of the `count` refs follow; the rest
 * come in GR_OP_MAP_REFS messages, and the broker answers once it has all.
 * With GR_MAP_PREDICTED the client has already given `index` to its caller
 * (it is the only user of the file); a wrong prediction is a protocol error.
 */
struct gr_map {
	uint32_t count;
	uint32_t n;
	uint64_t index;
	uint32_t flags;
	uint32_t pad;
	/* struct gr_grant_ref refs[n] */
};
_Static_assert(sizeof(struct gr_map) == 24, "gr_map");
#define GR_MAP_PREDICTED 0x1u

struct gr_map_refs {
	uint32_t n;
	uint32_t pad;
	/* struct gr_grant_ref refs[n] */
};
_Static_assert(sizeof(struct gr_map_refs) == 8, "gr_map_refs");

/* OUT. */
struct gr_map_reply {
	uint64_t index;
};
_Static_assert(sizeof(struct gr_map_reply) == 8, "gr_map_reply");

/*
 * IN. IOCTL_GNTDEV_GRANT_COPY's grants: the broker checks each (domain,
 * ref) as Xen's GNTTABOP_copy would for the caller and answers with the
 * page's memory, so that the client copies directly. The client caches
 * the answers; they stay good while the granting domain's grant epoch
 * (the read-only page sent with the gntdev HELLO reply) is unchanged.
 */
struct gr_copy_refs {
	uint32_t n;
	uint32_t pad;
	/* struct gr_copy_ref refs[n] */
};
_Static_assert(sizeof(struct gr_copy_refs) == 8, "gr_copy_refs");

struct gr_copy_ref {
	uint32_t ref;
	uint16_t domid; /* DOMID_SELF allowed */
	uint16_t pad;
};
_Static_assert(sizeof(struct gr_copy_ref) == 8, "gr_copy_ref");

/* OUT. Each message: rows [first, first + n) of the request's refs. */
struct gr_copy_reply {
	uint32_t first;
	uint32_t n;
	/* struct gr_copy_row rows[n] */
};
_Static_assert(sizeof(struct gr_copy_reply) == 8, "gr_copy_reply");

struct gr_copy_row {
	int16_t status;	   /* GNTST_okay, _general_error, _bad_domain, _bad_gntref */
	uint16_t fd_index; /* okay: index into this message's fds */
	uint32_t page;	   /* okay: page of the ref within that fd */
	uint32_t epoch;	   /* the granting domain's grant epoch when checked */
	uint16_t writable; /* okay: the grant (and the fd) allows writing */
	uint16_t domid;	   /* the granting domain, DOMID_SELF resolved */
};
_Static_assert(sizeof(struct gr_copy_row) == 16, "gr_copy_row");

/* The grant epoch page: one uint32_t per domain id below 0x7FF0. */
#define GR_EPOCH_SIZE (0x7FF0u * 4u)

/* IN. mmap() of a device file. */
struct gr_mmap {
	uint64_t offset;
	uint64_t len;
	uint32_t prot;	/* PROT_* */
	uint32_t flags; /* GR_MMAP_* */
};
_Static_assert(sizeof(struct gr_mmap) == 24, "gr_mmap");
#define GR_MMAP_SHARED 0x1u

/*
 * OUT. The first message carries the mapping's token as fds[0]: the client
 * keeps it exactly as long as any part of the mapping exists in any process
 * (fork shares it, exec and exit close it), and the broker treats its last
 * close as the last munmap. Each run names the fd (index into this message's
 * fds) and the page offset in that fd to map.
 */
struct gr_mmap_reply {
	uint64_t mapping_id;
	uint32_t nruns;	   /* in the whole reply */
	uint32_t n;	   /* in this message */
	uint32_t writable; /* the fds are writable (a rw grant, or the owner) */
	uint32_t pad;
	/* struct gr_run runs[n] */
};
_Static_assert(sizeof(struct gr_mmap_reply) == 24, "gr_mmap_reply");

struct gr_run {
	uint64_t offset; /* bytes, in the fd */
	uint32_t npages;
	uint16_t fd_index;
	uint16_t pad;
};
_Static_assert(sizeof(struct gr_run) == 16, "gr_run");

/* IN. Sent after the client closed its token of this mapping. */
struct gr_munmap {
	uint64_t mapping_id;
};
_Static_assert(sizeof(struct gr_munmap) == 8, "gr_munmap");

/*
 * Event channels. Each bound port has a doorbell eventfd: whoever may send
 * on a channel holds the peer port's doorbell and writes 1 to it; the owner
 * of the port waits on its own. The broker only binds and unbinds.
 */
struct gr_ev_bind {
	uint32_t remote_domain; /* BIND_*, RESTRICT; virq for BIND_VIRQ */
	uint32_t remote_port;
};
_Static_assert(sizeof(struct gr_ev_bind) == 8, "gr_ev_bind");

struct gr_ev_port_req {
	uint32_t port;
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_ev_port_req) == 8, "gr_ev_port_req");

enum gr_port_state {
	GR_PORT_FREE = 0,
	GR_PORT_UNBOUND = 1,
	GR_PORT_INTERDOMAIN = 2,
	GR_PORT_VIRQ = 3,
};

/* OUT. fds: BIND_* and PORT_INFO: [own doorbell] or, while the port is
 * interdomain, [own, peer's]; PORT_INFO sends none unless the port is bound
 * through this file (`bound_here`). */
struct gr_ev_port {
	uint32_t port;
	uint32_t state;
	uint32_t remote_domain;
	uint32_t remote_port;
	uint32_t gen;
	uint32_t bound_here;
};
_Static_assert(sizeof(struct gr_ev_port) == 24, "gr_ev_port");

/*
 * The page an evtchn file shares with the broker (a memfd sent with the
 * HELLO/ATTACH reply, mapped by every process that uses the file). The
 * broker bumps gen[port] whenever the port's peer changes, so a sender
 * knows its cached peer doorbell is stale without asking; clients record
 * masking in masked[] for grantctl. Nothing here is trusted by the broker.
 */
struct gr_ev_shared {
	uint32_t restrict_domid; /* GR_EV_UNRESTRICTED or the domid */
	uint32_t nports;	 /* entries in gen[] and masked[] */
				 /* uint32_t gen[nports]; uint8_t masked[nports]; */
};
_Static_assert(sizeof(struct gr_ev_shared) == 8, "gr_ev_shared");
#define GR_EV_UNRESTRICTED 0xFFFFu

/*
 * IN. Sent by a process right after it closed its copies of a device
 * socket: the broker reads everything still queued on that file's
 * connection, so if that was the last copy, the file is released (grants
 * ended, ports unbound, notifications fired) before the reply, as the
 * kernel's release is done when close() returns.
 */
struct gr_sync_file {
	uint64_t file_id;
};
_Static_assert(sizeof(struct gr_sync_file) == 8, "gr_sync_file");

/* OUT. Admin listings: arrays of fixed rows, streamed with GR_HDR_MORE. */
struct gr_list_reply {
	uint32_t n;
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_list_reply) == 8, "gr_list_reply");

struct gr_domain_row {
	uint16_t domid;
	uint8_t dying;
	uint8_t declared;
	uint32_t connections;
	uint32_t grants;
	uint32_t grant_limit;
	uint32_t mappings; /* grant pages this domain maps */
	uint32_t mapping_limit;
	uint32_t alloc_pages;
	uint32_t alloc_limit;
	uint32_t ports;
	uint32_t port_limit;
	uint32_t file_limit;
	uint32_t mmaps; /* mmaps held */
	uint32_t mmap_limit;
	uint32_t map_refs; /* refs recorded by MAP_GRANT_REF */
	uint32_t map_ref_limit;
	uint32_t pad;
};
_Static_assert(sizeof(struct gr_domain_row) == 64, "gr_domain_row");

enum gr_grant_state {
	GR_GRANT_ACTIVE = 1, /* owned by a gntalloc file */
	GR_GRANT_ENDING = 2, /* released by its owner, still mapped or cooling down */
};

struct gr_grant_row {
	uint16_t granter;
	uint16_t grantee;
	uint32_t ref;
	uint8_t readonly;
	uint8_t state;
	uint16_t pad;
	uint32_t mapcount;
};
_Static_assert(sizeof(struct gr_grant_row) == 16, "gr_grant_row");

struct gr_mapping_row {
	uint16_t granter;
	uint16_t mapper;
	uint32_t ref;
	int32_t pid; /* the process that mmapped */
	uint8_t writable;
	uint8_t pad[3];
};
_Static_assert(sizeof(struct gr_mapping_row) == 16, "gr_mapping_row");

struct gr_port_row {
	uint16_t domid;
	uint16_t remote_domid;
	uint32_t port;
	uint32_t remote_port;
	uint8_t state; /* GR_PORT_* */
	uint8_t pending;
	uint8_t masked;
	uint8_t bound; /* 0: unbound by its file, kept open by an unmap notification */
};
_Static_assert(sizeof(struct gr_port_row) == 16, "gr_port_row");

#endif
