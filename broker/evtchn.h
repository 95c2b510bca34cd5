/*
 * Event channels, the broker's half: the per-domain port table and the
 * bindings (ABI.md §2.5, §5). Delivery never passes through here: a bound
 * port has a doorbell eventfd, and whoever may send on the channel holds the
 * peer's doorbell. The broker sends only on behalf of unmap notifications,
 * whose sender may already be dead, and for VIRQ_DOM_EXC.
 */
#ifndef GRANTED_BROKER_EVTCHN_H
#define GRANTED_BROKER_EVTCHN_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct broker;
struct conn;
struct domain;
struct file;

#define VIRQ_TIMER   0u
#define VIRQ_DEBUG   1u
#define VIRQ_CONSOLE 2u
#define VIRQ_DOM_EXC 3u
#define NR_VIRQS     24u

int evtchn_file_init(struct file *f);
/* Unbinds every port of the file, as the driver's release does. */
void evtchn_release(struct file *f);
/* Replies to HELLO or ATTACH of an evtchn file: adds the shared page. */
int evtchn_hello_reply(struct conn *c, const struct gr_hdr *h, const struct gr_hello_reply *rep);
int evtchn_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len,
		  int *fds, unsigned nfds);

/*
 * The event reference of SET_UNMAP_NOTIFY (ABI.md §3.9): succeeds only for a
 * port of this domain bound through an evtchn file, and keeps the port open
 * after that file unbinds it, until the reference is put. -EINVAL otherwise.
 */
int evtchn_ref_get(struct domain *d, uint32_t port);
void evtchn_ref_put(struct domain *d, uint32_t port);
/* EVTCHNOP_send on the domain's own port: raises the peer; unbound: dropped. */
void evtchn_send_from(struct domain *d, uint32_t port);

/* A domain was destroyed: VIRQ_DOM_EXC fires for whoever bound it. */
void evtchn_virq_dom_exc(struct broker *b);
/* Frees the domain's port table (all ports are closed by then). */
void evtchn_domain_free(struct domain *d);

/* Admin listing of every port of every domain. */
int evtchn_list(struct conn *c, const struct gr_hdr *h);

#endif
