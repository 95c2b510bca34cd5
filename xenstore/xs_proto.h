/*
 * The xenstore wire protocol (Xen's io/xs_wire.h, 4.17), as the server
 * sees it: a 16-byte header of native-endian u32, then `len` payload bytes.
 * Requests and replies share the header; a reply echoes type (XS_ERROR for
 * an error), req_id and tx_id. Watch events carry req_id 0 and tx_id 0.
 */
#ifndef GRANTED_XS_PROTO_H
#define GRANTED_XS_PROTO_H

#include <stdint.h>

enum xs_type {
	XS_CONTROL = 0, /* IN: "cmd\0args...\0"; first message may claim a domain */
	XS_DIRECTORY = 1,
	XS_READ = 2,
	XS_GET_PERMS = 3,
	XS_WATCH = 4,	/* IN: "path\0token\0" */
	XS_UNWATCH = 5, /* IN: "path\0token\0" */
	XS_TRANSACTION_START = 6,
	XS_TRANSACTION_END = 7, /* IN: "T\0" commit, "F\0" abort */
	XS_INTRODUCE = 8,	/* IN: "domid\0mfn\0port\0" */
	XS_RELEASE = 9,
	XS_GET_DOMAIN_PATH = 10,
	XS_WRITE = 11, /* IN: "path\0" then the value, no trailing NUL */
	XS_MKDIR = 12,
	XS_RM = 13,
	XS_SET_PERMS = 14,   /* IN: "path\0" then "<l><domid>\0" per entry, l in n/r/w/b */
	XS_WATCH_EVENT = 15, /* OUT: "path\0token\0" */
	XS_ERROR = 16,	     /* OUT: "<ERRNO-NAME>\0" */
	XS_IS_DOMAIN_INTRODUCED = 17,
	XS_RESUME = 18,
	XS_SET_TARGET = 19,
	/* 20 was XS_RESTRICT, removed */
	XS_RESET_WATCHES = 21,
	XS_DIRECTORY_PART = 22, /* IN: "path\0offset\0"; OUT: "gen\0" children... */
	XS_TYPE_COUNT
};

struct xs_hdr {
	uint32_t type;
	uint32_t req_id;
	uint32_t tx_id; /* 0: no transaction */
	uint32_t len;	/* payload bytes that follow */
};
_Static_assert(sizeof(struct xs_hdr) == 16, "xenstore header is 16 bytes");

#define XS_PAYLOAD_MAX	4096 /* a bigger request or reply is E2BIG */
#define XS_ABS_PATH_MAX 3072 /* Xen's XENSTORE_ABS_PATH_MAX */
#define XS_REL_PATH_MAX 2048 /* Xen's XENSTORE_REL_PATH_MAX */

/* Node permission bits (xs_lib.h); IGNORE marks an entry for a gone domain. */
#define XS_PERM_NONE   0x00u
#define XS_PERM_READ   0x01u
#define XS_PERM_WRITE  0x02u
#define XS_PERM_OWNER  0x08u
#define XS_PERM_IGNORE 0x10u

#define XS_DOMID_FIRST_RESERVED 0x7ff0u
#define XS_DOMID_SELF		0x7ff0u

/* granted's one extension: the first message of a connection may be
 * XS_CONTROL with payload "granted-domid\0<N>\0" (N decimal); the reply is
 * "OK\0" with type XS_CONTROL. */
#define XS_CLAIM_CMD "granted-domid"

#endif
