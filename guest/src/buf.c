#include "buf.h"

#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (b->head + b->len + n > b->cap) {
		/* Slide the live bytes down before growing: a queue that is
		 * drained as fast as it fills never reallocates. */
		if (b->head > 0) {
			memmove(b->data, b->data + b->head, b->len);
			b->head = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			uint8_t *d = realloc(b->data, cap);
			if (!d)
				return -1;
			b->data = d;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->head + b->len, p, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->head = 0;
		b->len = 0;
		/* Give back the memory of a burst once it has drained. */
		if (b->cap > (1u << 20)) {
			free(b->data);
			b->data = NULL;
			b->cap = 0;
		}
		return;
	}
	b->head += n;
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->head = b->len = b->cap = 0;
}
