/* The seed generator's shared pieces (gen_corpus.c). */
#ifndef GRANTED_GEN_CORPUS_H
#define GRANTED_GEN_CORPUS_H

#include <stddef.h>
#include <stdint.h>

/* Xen's virq numbers (broker/evtchn.h). */
enum { VIRQ_TIMER = 0, VIRQ_DOM_EXC = 3 };

/* One input being written. */
struct buf {
	uint8_t d[16384];
	size_t n;
};

/* Appends, little-endian as the targets read; exits if the seed grows too big. */
void put(struct buf *b, const void *p, size_t n);
void u8(struct buf *b, uint8_t v);
void u16(struct buf *b, uint16_t v);
void u32(struct buf *b, uint32_t v);
void u64(struct buf *b, uint64_t v);
/* Writes b to <out>/<target>/<name>. */
void save(const char *target, const char *name, const struct buf *b);

void gen_message(void);
void gen_connection(void);
void gen_ioctl(void);

#endif
