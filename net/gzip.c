/* net/gzip.c: streaming gzip decoding (see gzip.h). zlib does the work; this
 * file bounds the output (a small body must not inflate past --max-body) and
 * turns zlib's answers into a reason and a byte offset. */
#include "net/gzip.h"

#include <errno.h>
#include <string.h>

#define GZIP_OUT_STEP (64u * 1024u)

int gzip_init(gzip_dec_t *g)
{
	memset(g, 0, sizeof *g);
	/* 16 + MAX_WBITS: a gzip wrapper, not zlib's own or raw deflate. */
	if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	g->active = true;
	return 0;
}

void gzip_end(gzip_dec_t *g)
{
	if (g->active)
		inflateEnd(&g->z);
	g->active = false;
}

int gzip_feed(gzip_dec_t *g, const void *in, size_t n, json_buf_t *out, uint64_t out_max,
              const char **reason, uint64_t *offset)
{
	g->z.next_in = (Bytef *)(uintptr_t)in;
	g->z.avail_in = (uInt)n;
	while (g->z.avail_in > 0) {
		if (g->ended) {
			/* Another member follows: decode it too (RFC 1952 §2.2). */
			if (inflateReset(&g->z) != Z_OK)
				return -ENOMEM;
			g->ended = false;
		}
		if (out->len >= out_max)
			return GZIP_TOO_LARGE;
		uint64_t room = out_max - out->len;
		size_t step = room < GZIP_OUT_STEP ? (size_t)room : GZIP_OUT_STEP;
		if (json_buf_reserve(out, step))
			return -ENOMEM;
		uInt before_in = g->z.avail_in;
		g->z.next_out = (Bytef *)out->data + out->len;
		g->z.avail_out = (uInt)step;
		int r = inflate(&g->z, Z_NO_FLUSH);
		out->len += step - g->z.avail_out;
		g->in_total += before_in - g->z.avail_in;
		if (r == Z_STREAM_END) {
			g->ended = true;
			continue;
		}
		if (r == Z_OK || (r == Z_BUF_ERROR && g->z.avail_out == 0))
			continue;
		*reason = r == Z_MEM_ERROR ? "out of memory"
		          : g->z.msg       ? g->z.msg
		                           : "corrupt data";
		*offset = g->in_total;
		return r == Z_MEM_ERROR ? -ENOMEM : GZIP_ERROR;
	}
	return 0;
}
