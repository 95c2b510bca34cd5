/*
 * The broker's one event loop: epoll over registered fds, level triggered.
 * Removing a source from inside any callback is safe: the source is marked
 * dead and freed after the current dispatch round (seatd's poller does the
 * same), so a callback never runs for a source that was removed.
 */
#ifndef GRANTED_LOOP_H
#define GRANTED_LOOP_H

#include <stdint.h>

struct loop;
struct loop_source;

typedef void (*loop_fn)(void *data, uint32_t events);

struct loop *loop_create(void);
/* Frees every source still registered; their fds are not closed. */
void loop_destroy(struct loop *loop);

/* Registers fd (not consumed) for EPOLL* events. Returns NULL with errno set. */
struct loop_source *loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *data);
int loop_modify(struct loop_source *src, uint32_t events);
/* Unregisters; the fd is not closed. NULL is accepted. */
void loop_remove(struct loop_source *src);

/* Waits up to timeout_ms (-1: forever) and runs the callbacks of ready
 * sources. Returns the number of sources dispatched, or -errno. */
int loop_dispatch(struct loop *loop, int timeout_ms);

#endif
