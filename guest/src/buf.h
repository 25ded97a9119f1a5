/* A growable byte queue: appended at the tail, consumed at the head. */
#ifndef COCOON_BUF_H
#define COCOON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t head; /* first unconsumed byte */
	size_t len;  /* unconsumed bytes, starting at head */
	size_t cap;
};

/* Returns 0, or -1 when out of memory (the queue is unchanged then). */
int buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
static inline const uint8_t *buf_peek(const struct buf *b)
{
	return b->data ? b->data + b->head : b->data;
}
void buf_free(struct buf *b);

#endif
