/* libgranted internals: handles, the request channel, the mapping registry. */
#ifndef GRANTED_LIB_INTERNAL_H
#define GRANTED_LIB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "granted/granted.h"
#include "protocol.h"

#define GR_EXPORT __attribute__((visibility("default")))

struct evtchn_state;
struct copy_cache;

/*
 * The channel a process uses for requests on one file: the device socket
 * itself in the process that opened it, an attach connection in any other
 * (a fork child, or a process that received the fd). Replies go back on the
 * channel the request came from, so two processes never read each other's.
 */
struct chan {
	int fd;
	uint64_t forkgen; /* the process generation this channel belongs to */
	uint32_t seq;
};

/*
 * Messages the broker needs but no caller waits for (a predicted MAP): they
 * leave with the next request, in the same sendmmsg, or on a flush.
 */
#define OUTBOX_MSGS 16
struct outbox {
	unsigned n;
	size_t used;
	uint32_t off[OUTBOX_MSGS], len[OUTBOX_MSGS];
	char *buf; /* GR_MSG_MAX bytes */
};

/* A map of a solo gntdev file, as the broker has (or will have) it. */
struct lmap {
	uint64_t index; /* pages */
	uint32_t count;
};

struct granted_dev {
	pthread_mutex_t lock;
	enum granted_device kind;
	uint16_t domid;
	int flags;   /* open(2) flags */
	int conn_fd; /* our reference to the device socket (CLOEXEC, high) */
	struct chan chan;
	unsigned refs; /* 1 while open + 1 per live mapping */
	bool closed;
	bool notify_armed; /* this process set an unmap notification here */
	uint64_t file_id;
	uint32_t map_limit;
	char *buf; /* GR_MSG_MAX bytes for replies */
	struct evtchn_state *ev;
	struct copy_cache *copy; /* gntdev: grant copy's memory of grants */
	struct outbox ob;
	/* Solo: only this process uses the file (opened here O_CLOEXEC, not
	 * shared by fork, dup or SCM_RIGHTS since). Then our mirror of its
	 * map list is exact, so MAP and UNMAP need not wait for the broker. */
	bool solo;
	struct lmap *lmaps; /* sorted by index */
	uint32_t nlmaps, lmaps_cap;
	struct granted_dev *next_dev, *prev_dev; /* all handles (fork) */
};

/* getpid(), without the syscall after the first. */
#define gr_getpid granted_getpid

/* Increments in every fork child (pthread_atfork). */
uint64_t gr_forkgen(void);
void gr_init_once(void);

/* Connects to the broker: -ENOENT if none listens. */
int gr_connect(int *out);

typedef int (*reply_fn)(void *ctx, const struct gr_hdr *h, const void *payload, size_t len,
			int *fds, unsigned nfds);

/*
 * Sends a request on the device's channel (attaching first in a process
 * that has none) and reads its reply: fn sees each message of the reply
 * and may take fds (set them to -1); the rest are closed. Returns the
 * reply's result. Called with dev->lock held.
 */
int chan_call(struct granted_dev *dev, uint16_t op, const void *req, size_t len, reply_fn fn,
	      void *ctx);
/* Queues a message no one waits for, to leave with the next request. */
int chan_queue(struct granted_dev *dev, uint16_t op, uint16_t flags, const void *req, size_t len);
int chan_flush(struct granted_dev *dev);
/* The two halves of chan_call, for requests sent in several messages. */
int chan_send(struct granted_dev *dev, uint16_t op, uint16_t flags, const void *req, size_t len,
	      uint32_t *seq);
int chan_wait(struct granted_dev *dev, uint16_t op, uint32_t seq, reply_fn fn, void *ctx);
/* The same, on a bare connection (admin). */
int chan_call_fd(struct chan *ch, char *buf, uint16_t op, const void *req, size_t len,
		 const int *fds, unsigned nfds, reply_fn fn, void *ctx);

/* sync.c: waits until the broker has seen our copies of the file go. */
void gr_sync_file(uint64_t file_id);

/* device.c: the file is no longer this process's alone. Lock held. */
void dev_unsolo(struct granted_dev *dev);

void dev_get(struct granted_dev *dev);
void dev_put(struct granted_dev *dev);

/* evtchn.c */
int evtchn_setup(struct granted_dev *dev, int shm_fd);
void evtchn_teardown(struct granted_dev *dev);
int evtchn_fd(const struct granted_dev *dev);

/* copy.c: epoch_fd is the grant epoch page (not consumed). */
int copy_setup(struct granted_dev *dev, int epoch_fd);
void copy_teardown(struct granted_dev *dev);

/* debug.c: silent unless GRANTED_DEBUG is set. */
void gr_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
