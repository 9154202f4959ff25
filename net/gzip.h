/* net/gzip.h: streaming gzip decoding of HTTP bodies (Content-Encoding:
 * gzip), over zlib. The loop (engine/conn.c) feeds each piece of the body as
 * it arrives and gets the decoded bytes appended to the job's body buffer;
 * the bytes as sent are kept apart for the raw file and the SHA-256. */
#ifndef RF_GZIP_H
#define RF_GZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "parse/json.h"

#define GZIP_ERROR (-1)     /* bad gzip data: *reason says why */
#define GZIP_TOO_LARGE (-2) /* the decoded body would pass out_max */

typedef struct {
	z_stream z;
	bool active; /* initialised: gzip_end must run */
	bool ended;  /* the last member's trailer was read */
	uint64_t in_total;
} gzip_dec_t;

int gzip_init(gzip_dec_t *g); /* 0 or -ENOMEM */
void gzip_end(gzip_dec_t *g);

/* Decodes in[0..n) and appends to out, never past out_max bytes in all.
 * Concatenated members are decoded one after another. Returns 0,
 * GZIP_ERROR (with *reason and *offset, the byte of the encoded stream),
 * GZIP_TOO_LARGE, or -ENOMEM. */
int gzip_feed(gzip_dec_t *g, const void *in, size_t n, json_buf_t *out, uint64_t out_max,
              const char **reason, uint64_t *offset);

#endif
