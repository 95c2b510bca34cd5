/*
 * The kernel's own Xen device ABI, from linux-libc-dev, checked at build time.
 *
 * We never copy these definitions: the structs and ioctl numbers come from
 * <xen/gntalloc.h>, <xen/gntdev.h> and <xen/evtchn.h> exactly as the running
 * kernel's uapi ships them. The uapi headers use two Xen typedefs they do not
 * define themselves (Xen's own tools/libs define them the same way before
 * including the headers).
 */
#ifndef GRANTED_XEN_ABI_H
#define GRANTED_XEN_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;

#include <xen/evtchn.h>
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

/* Values the uapi headers leave to the hypervisor's public headers. */
#define XEN_PAGE_SIZE		   4096u
#define XEN_PAGE_SHIFT		   12
#define DOMID_FIRST_RESERVED	   0x7FF0u
#define DOMID_SELF		   0x7FF0u
#define GNTTAB_NR_RESERVED_ENTRIES 8u

#define GNTCOPY_source_gref 1u
#define GNTCOPY_dest_gref   2u

#define GNTST_okay		0
#define GNTST_general_error	(-1)
#define GNTST_bad_domain	(-2)
#define GNTST_bad_gntref	(-3)
#define GNTST_permission_denied (-8)
#define GNTST_bad_page		(-9)
#define GNTST_bad_copy_arg	(-10)

/* Layouts (x86-64), as ABI.md §1.3 gives them. */
_Static_assert(sizeof(struct ioctl_gntalloc_alloc_gref) == 24, "alloc_gref");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, domid) == 0, "alloc_gref.domid");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, flags) == 2, "alloc_gref.flags");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, count) == 4, "alloc_gref.count");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, index) == 8, "alloc_gref.index");
_Static_assert(offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids) == 16, "alloc_gref.ids");
_Static_assert(sizeof(struct ioctl_gntalloc_dealloc_gref) == 16, "dealloc_gref");
_Static_assert(offsetof(struct ioctl_gntalloc_dealloc_gref, count) == 8, "dealloc.count");
_Static_assert(sizeof(struct ioctl_gntalloc_unmap_notify) == 16, "gntalloc notify");
_Static_assert(offsetof(struct ioctl_gntalloc_unmap_notify, action) == 8, "notify.action");
_Static_assert(offsetof(struct ioctl_gntalloc_unmap_notify, event_channel_port) == 12,
	       "notify.port");

_Static_assert(sizeof(struct ioctl_gntdev_grant_ref) == 8, "grant_ref");
_Static_assert(sizeof(struct ioctl_gntdev_map_grant_ref) == 24, "map_grant_ref");
_Static_assert(offsetof(struct ioctl_gntdev_map_grant_ref, index) == 8, "map.index");
_Static_assert(offsetof(struct ioctl_gntdev_map_grant_ref, refs) == 16, "map.refs");
_Static_assert(sizeof(struct ioctl_gntdev_unmap_grant_ref) == 16, "unmap_grant_ref");
_Static_assert(sizeof(struct ioctl_gntdev_get_offset_for_vaddr) == 24, "get_offset");
_Static_assert(offsetof(struct ioctl_gntdev_get_offset_for_vaddr, count) == 16, "off.count");
_Static_assert(sizeof(struct ioctl_gntdev_set_max_grants) == 4, "set_max_grants");
_Static_assert(sizeof(struct ioctl_gntdev_unmap_notify) == 16, "gntdev notify");
_Static_assert(sizeof(struct gntdev_grant_copy_segment) == 24, "copy segment");
_Static_assert(offsetof(struct gntdev_grant_copy_segment, dest) == 8, "seg.dest");
_Static_assert(offsetof(struct gntdev_grant_copy_segment, len) == 16, "seg.len");
_Static_assert(offsetof(struct gntdev_grant_copy_segment, flags) == 18, "seg.flags");
_Static_assert(offsetof(struct gntdev_grant_copy_segment, status) == 20, "seg.status");
_Static_assert(sizeof(struct ioctl_gntdev_grant_copy) == 16, "grant_copy");
_Static_assert(offsetof(struct ioctl_gntdev_grant_copy, segments) == 8, "copy.segments");

_Static_assert(sizeof(struct ioctl_evtchn_bind_virq) == 4, "bind_virq");
_Static_assert(sizeof(struct ioctl_evtchn_bind_interdomain) == 8, "bind_interdomain");
_Static_assert(sizeof(struct ioctl_evtchn_bind_unbound_port) == 4, "bind_unbound");
_Static_assert(sizeof(struct ioctl_evtchn_unbind) == 4, "unbind");
_Static_assert(sizeof(struct ioctl_evtchn_notify) == 4, "notify");
_Static_assert(sizeof(struct ioctl_evtchn_restrict_domid) == 2, "restrict_domid");

/* The numbers the drivers answer to (ABI.md §1.2). */
_Static_assert(IOCTL_GNTDEV_MAP_GRANT_REF == 0x00184700, "MAP_GRANT_REF");
_Static_assert(IOCTL_GNTDEV_UNMAP_GRANT_REF == 0x00104701, "UNMAP_GRANT_REF");
_Static_assert(IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR == 0x00184702, "GET_OFFSET_FOR_VADDR");
_Static_assert(IOCTL_GNTDEV_SET_MAX_GRANTS == 0x00044703, "SET_MAX_GRANTS");
_Static_assert(IOCTL_GNTALLOC_ALLOC_GREF == 0x00184705, "ALLOC_GREF");
_Static_assert(IOCTL_GNTALLOC_DEALLOC_GREF == 0x00104706, "DEALLOC_GREF");
_Static_assert(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY == 0x00104707, "GNTALLOC_SET_UNMAP_NOTIFY");
_Static_assert(IOCTL_GNTDEV_SET_UNMAP_NOTIFY == 0x00104707, "GNTDEV_SET_UNMAP_NOTIFY");
_Static_assert(IOCTL_GNTDEV_GRANT_COPY == 0x00104708, "GRANT_COPY");
_Static_assert(IOCTL_EVTCHN_BIND_VIRQ == 0x00044500, "BIND_VIRQ");
_Static_assert(IOCTL_EVTCHN_BIND_INTERDOMAIN == 0x00084501, "BIND_INTERDOMAIN");
_Static_assert(IOCTL_EVTCHN_BIND_UNBOUND_PORT == 0x00044502, "BIND_UNBOUND_PORT");
_Static_assert(IOCTL_EVTCHN_UNBIND == 0x00044503, "UNBIND");
_Static_assert(IOCTL_EVTCHN_NOTIFY == 0x00044504, "NOTIFY");
_Static_assert(IOCTL_EVTCHN_RESET == 0x00004505, "RESET");
_Static_assert(IOCTL_EVTCHN_RESTRICT_DOMID == 0x00024506, "RESTRICT_DOMID");

#endif
