/* Seeds of fuzz_ioctl: ioctl sequences (see fuzz_ioctl.c). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "gen_corpus.h"
#include "protocol.h"
#include "xen_abi.h"

enum { S_ALLOC1, S_DEV2, S_EV1, S_EV2, S_DEV1, S_ALLOC2, S_MMAP, S_MAPACT };

struct fixup {
	uint16_t off, target;
};

/* An ioctl with the raw request number; fixups point into the area. */
static void ioc(struct buf *b, unsigned slot, uint32_t request, const struct buf *arg,
		const struct fixup *fx, unsigned nfx)
{
	size_t len = arg ? arg->n : 0;
	u8(b, (uint8_t)(slot | 8 | nfx << 5 | (len > 255 ? 0x80 : 0)));
	u32(b, request);
	if (len > 255)
		u16(b, (uint16_t)len);
	else
		u8(b, (uint8_t)len);
	if (len)
		put(b, arg->d, len);
	for (unsigned i = 0; i < nfx; i++) {
		u16(b, fx[i].off);
		u16(b, fx[i].target);
	}
}

static void ioc_wild(struct buf *b, unsigned slot, uint32_t request, uint64_t ptr)
{
	u8(b, (uint8_t)(slot | 8 | 16));
	u32(b, request);
	u64(b, ptr);
}

static void ioc_alloc(struct buf *b, unsigned slot, uint16_t grantee, uint32_t count)
{
	struct buf a = { 0 };
	u16(&a, grantee);
	u16(&a, 1);
	u32(&a, count);
	u64(&a, 0);
	for (uint32_t i = 0; i < count || i < 2; i++)
		u32(&a, 0); /* the struct has room for 1 ref, padded to 24 */
	ioc(b, slot, IOCTL_GNTALLOC_ALLOC_GREF, &a, NULL, 0);
}

static void ioc_range(struct buf *b, unsigned slot, uint32_t request, uint64_t index,
		      uint32_t count)
{
	struct buf a = { 0 };
	u64(&a, index);
	u32(&a, count);
	u32(&a, 0);
	ioc(b, slot, request, &a, NULL, 0);
}

static void ioc_map(struct buf *b, unsigned slot, uint32_t dom, uint32_t first, uint32_t count,
		    uint32_t present)
{
	struct buf a = { 0 };
	u32(&a, count);
	u32(&a, 0);
	u64(&a, 0);
	for (uint32_t i = 0; i < present; i++) {
		u32(&a, dom);
		u32(&a, first + i);
	}
	ioc(b, slot, IOCTL_GNTDEV_MAP_GRANT_REF, &a, NULL, 0);
}

static void ioc_u32s(struct buf *b, unsigned slot, uint32_t request, uint32_t v0, uint32_t v1,
		     unsigned n)
{
	struct buf a = { 0 };
	if (n > 0)
		u32(&a, v0);
	if (n > 1)
		u32(&a, v1);
	ioc(b, slot, request, &a, NULL, 0);
}

static void ioc_notify(struct buf *b, unsigned slot, uint64_t index, uint32_t act, uint32_t port)
{
	struct buf a = { 0 };
	u64(&a, index);
	u32(&a, act);
	u32(&a, port);
	ioc(b, slot, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &a, NULL, 0);
}

static void do_mmap(struct buf *b, unsigned slot, uint8_t page, uint8_t pages, uint8_t how)
{
	u8(b, S_MMAP);
	u8(b, (uint8_t)slot);
	u8(b, page);
	u8(b, (uint8_t)(pages - 1));
	u8(b, how);
}

static void map_act(struct buf *b, uint8_t which, uint8_t what)
{
	u8(b, S_MAPACT);
	u8(b, which);
	u8(b, what);
}

/*
 * GRANT_COPY with its segments and local buffer in the argument itself:
 * [ioctl_gntdev_grant_copy][segment x n][buffer]. The argument ends at the
 * area's end, so it starts at AREA - len.
 */
static void ioc_copy(struct buf *b, uint16_t dom, uint32_t ref, unsigned flags0, unsigned flags1)
{
	enum { AREA = 4 * 4096, SEG = 24, BUFLEN = 64 };
	struct buf a = { 0 };
	size_t len = 16 + 2 * SEG + BUFLEN;
	uint16_t start = (uint16_t)(AREA - len);
	u32(&a, 2);
	u32(&a, 0);
	u64(&a, 0); /* segments: fixed up */
	unsigned flags[2] = { flags0, flags1 };
	for (int i = 0; i < 2; i++) {
		/* source, dest: a gref side is {ref, offset, domid}, a local
		 * side a pointer (fixed up) */
		for (int side = 0; side < 2; side++) {
			bool gref =
				flags[i] & (side == 0 ? GNTCOPY_source_gref : GNTCOPY_dest_gref);
			if (gref) {
				u32(&a, ref);
				u16(&a, (uint16_t)(i * 100));
				u16(&a, dom);
			} else {
				u64(&a, 0);
			}
		}
		u16(&a, BUFLEN);
		u16(&a, (uint16_t)flags[i]);
		u32(&a, 0); /* status + pad */
	}
	for (int i = 0; i < BUFLEN; i++)
		u8(&a, (uint8_t)i);
	struct fixup fx[3] = { { 8, (uint16_t)(start + 16) } };
	unsigned nfx = 1;
	for (int i = 0; i < 2; i++) {
		if (!(flags[i] & GNTCOPY_source_gref))
			fx[nfx++] = (struct fixup){ (uint16_t)(16 + i * SEG),
						    (uint16_t)(start + 16 + 2 * SEG) };
		else if (!(flags[i] & GNTCOPY_dest_gref))
			fx[nfx++] = (struct fixup){ (uint16_t)(16 + i * SEG + 8),
						    (uint16_t)(start + 16 + 2 * SEG) };
	}
	ioc(b, S_DEV2, IOCTL_GNTDEV_GRANT_COPY, &a, fx, nfx);
}

void gen_ioctl(void)
{
	struct buf b;

	/* Grant, map, mmap, touch, unmap, deallocate. */
	b.n = 0;
	u8(&b, 0);
	ioc_alloc(&b, S_ALLOC1, 2, 2);
	ioc_map(&b, S_DEV2, 1, 8, 2, 2);
	do_mmap(&b, S_DEV2, 0, 2, 3 | 4);
	map_act(&b, 0, 1);
	map_act(&b, 0, 2);
	ioc_range(&b, S_DEV2, IOCTL_GNTDEV_UNMAP_GRANT_REF, 0, 2);
	ioc_range(&b, S_ALLOC1, IOCTL_GNTALLOC_DEALLOC_GREF, 0, 2);
	map_act(&b, 0, 3);
	map_act(&b, 0, 0);
	save("ioctl", "alloc-map-mmap", &b);

	/* The same on a solo (O_CLOEXEC) gntdev file, maps not waited for. */
	b.n = 0;
	u8(&b, 1);
	ioc_alloc(&b, S_ALLOC1, 2, 3);
	ioc_map(&b, S_DEV2, 1, 8, 1, 1);
	ioc_map(&b, S_DEV2, 1, 9, 2, 2);
	ioc_range(&b, S_DEV2, IOCTL_GNTDEV_UNMAP_GRANT_REF, 4096, 2);
	ioc_map(&b, S_DEV2, 1, 9, 2, 2);
	do_mmap(&b, S_DEV2, 1, 2, 1 | 4);
	ioc_map(&b, S_DEV2, 1, 10, 1, 1);
	ioc_range(&b, S_DEV2, IOCTL_GNTDEV_UNMAP_GRANT_REF, 4096, 2);
	ioc_range(&b, S_DEV2, IOCTL_GNTDEV_UNMAP_GRANT_REF, 0, 0);
	save("ioctl", "solo-maps", &b);

	/*
	 * Found by this target: on a solo file, UNMAP of a MAP still in the
	 * outbox drops that MAP, but a later queued MAP was placed (and its
	 * index predicted) after it; the broker places it in the hole, calls
	 * the prediction wrong and closes the file (-EIO from then on).
	 */
	b.n = 0;
	u8(&b, 1);
	ioc_alloc(&b, S_ALLOC1, 2, 3);
	ioc_map(&b, S_DEV2, 1, 8, 1, 1);
	ioc_map(&b, S_DEV2, 1, 9, 2, 2);
	ioc_range(&b, S_DEV2, IOCTL_GNTDEV_UNMAP_GRANT_REF, 0, 1);
	do_mmap(&b, S_DEV2, 1, 2, 1 | 4);
	save("ioctl", "bug-solo-unqueued-map-moves-next", &b);

	/*
	 * Found by this target (UBSan): GRANT_COPY with segments == NULL does
	 * arithmetic on the null pointer (shim/ioctl.c gntdev_copy: `user +
	 * base * size`, `u + stop * size`), undefined behaviour even when
	 * the offset is 0; the copy_in that follows would say EFAULT.
	 */
	b.n = 0;
	u8(&b, 0);
	{
		struct buf a = { 0 };
		u32(&a, 1);
		u32(&a, 0);
		u64(&a, 0);
		ioc(&b, S_DEV2, IOCTL_GNTDEV_GRANT_COPY, &a, NULL, 0);
	}
	save("ioctl", "bug-grant-copy-null-segments", &b);

	/*
	 * Found by this target (UBSan): a GRANT_COPY segment whose grant
	 * does not check out: lib/copy.c granted_grant_copy computes
	 * `dst.page + offset` (and `src.page + ...`) with page NULL before
	 * it looks at the status.
	 */
	b.n = 0;
	u8(&b, 0);
	ioc_copy(&b, 1, 8, GNTCOPY_dest_gref, GNTCOPY_source_gref);
	save("ioctl", "bug-grant-copy-null-page", &b);

	/* GRANT_COPY both ways, then with a dead grant and a bad buffer. */
	b.n = 0;
	u8(&b, 0);
	ioc_alloc(&b, S_ALLOC1, 2, 1);
	ioc_copy(&b, 1, 8, GNTCOPY_dest_gref, GNTCOPY_source_gref);
	ioc_copy(&b, 1, 8, GNTCOPY_source_gref | GNTCOPY_dest_gref, GNTCOPY_source_gref);
	ioc_range(&b, S_ALLOC1, IOCTL_GNTALLOC_DEALLOC_GREF, 0, 1);
	ioc_copy(&b, 1, 8, GNTCOPY_dest_gref, GNTCOPY_source_gref);
	ioc_copy(&b, 0x7FF0, 8, GNTCOPY_dest_gref, 0);
	save("ioctl", "grant-copy", &b);

	/* Event channels: bind both ways, notify, unbind, reset, restrict. */
	b.n = 0;
	u8(&b, 0);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_BIND_UNBOUND_PORT, 2, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_BIND_INTERDOMAIN, 1, 1, 2);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_NOTIFY, 1, 0, 1);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_NOTIFY, 1, 0, 1);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_UNBIND, 1, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_NOTIFY, 1, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_RESET, 0, 0, 0);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_BIND_VIRQ, VIRQ_DOM_EXC, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_RESTRICT_DOMID, 1, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_BIND_UNBOUND_PORT, 1, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_BIND_INTERDOMAIN, 1, 1, 2);
	save("ioctl", "evtchn", &b);

	/* Unmap notifications on both devices, fired at close. */
	b.n = 0;
	u8(&b, 0);
	ioc_alloc(&b, S_ALLOC1, 2, 1);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_BIND_UNBOUND_PORT, 2, 0, 1);
	ioc_u32s(&b, S_EV2, IOCTL_EVTCHN_BIND_INTERDOMAIN, 1, 1, 2);
	ioc_notify(&b, S_ALLOC1, 10, 3, 1);
	ioc_map(&b, S_DEV2, 1, 8, 1, 1);
	ioc_notify(&b, S_DEV2, 5, 3, 1);
	do_mmap(&b, S_DEV2, 0, 1, 3 | 4);
	ioc_notify(&b, S_DEV2, 6, 1, 0);
	save("ioctl", "unmap-notify", &b);

	/* Arguments cut short by the unmapped page, and wild pointers. */
	b.n = 0;
	u8(&b, 0);
	{
		struct buf a = { 0 };
		u16(&a, 2);
		u16(&a, 1);
		ioc(&b, S_ALLOC1, IOCTL_GNTALLOC_ALLOC_GREF, &a, NULL, 0);
		a.n = 0;
		u16(&a, 2);
		u16(&a, 1);
		u32(&a, 3);
		u64(&a, 0);
		u32(&a, 0); /* room for 1 ref of 3: copy_out faults */
		ioc(&b, S_ALLOC1, IOCTL_GNTALLOC_ALLOC_GREF, &a, NULL, 0);
	}
	ioc_map(&b, S_DEV2, 1, 8, 3, 1);
	ioc_wild(&b, S_DEV2, IOCTL_GNTDEV_GRANT_COPY, 0);
	ioc_wild(&b, S_EV1, IOCTL_EVTCHN_BIND_INTERDOMAIN, 0xdeadbeef000);
	ioc_u32s(&b, S_EV1, IOCTL_EVTCHN_BIND_INTERDOMAIN, 2, 0, 1);
	{
		struct buf a = { 0 };
		u32(&a, 1000);
		u32(&a, 0);
		u64(&a, 0);
		struct fixup fx = { 8, 4 * 4096 - 16 - 24 };
		ioc(&b, S_DEV2, IOCTL_GNTDEV_GRANT_COPY, &a, &fx, 1);
	}
	save("ioctl", "efault", &b);

	/* Requests no driver knows, and SET_MAX_GRANTS. */
	b.n = 0;
	u8(&b, 0);
	for (unsigned s = 0; s < 6; s++)
		ioc_u32s(&b, s, 0x12345678, 1, 0, 1);
	ioc_u32s(&b, S_DEV2, IOCTL_GNTDEV_SET_MAX_GRANTS, 1, 0, 1);
	ioc_u32s(&b, S_EV1, IOCTL_GNTALLOC_ALLOC_GREF, 1, 0, 1);
	save("ioctl", "unknown-requests", &b);

	/* gntalloc's own mmap, read-only opens refusing writable ones. */
	b.n = 0;
	u8(&b, 2);
	ioc_alloc(&b, S_ALLOC2, 1, 3);
	do_mmap(&b, S_ALLOC2, 0, 3, 3 | 4);
	do_mmap(&b, S_ALLOC2, 0, 3, 1 | 4);
	do_mmap(&b, S_ALLOC2, 1, 2, 1);
	map_act(&b, 0, 1);
	ioc_range(&b, S_ALLOC2, IOCTL_GNTALLOC_DEALLOC_GREF, 0, 3);
	map_act(&b, 0, 1);
	{
		struct buf a = { 0 };
		u64(&a, 0); /* vaddr: not a mapping */
		u64(&a, 0);
		u32(&a, 0);
		u32(&a, 0);
		ioc(&b, S_DEV1, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &a, NULL, 0);
	}
	save("ioctl", "gntalloc-mmap-rdonly", &b);
}
