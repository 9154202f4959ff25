/* net/tls.h: the TLS client over memory BIOs.
 *
 * OpenSSL never touches a socket: the loop (engine/conn.c) receives
 * ciphertext with io_uring into its own buffers, and OpenSSL's read BIO pulls
 * it straight from there (tls_source_t: one copy, into OpenSSL's record
 * buffer, where a memory BIO took two plus a clear). The ciphertext OpenSSL
 * wants sent goes to a memory BIO; tls_take_out hands it to io_uring.
 * Verification is always on: TLS 1.2+, the peer's chain against the system
 * store or --cacert, and the host name (or IP address) of the URL. */
#ifndef RF_TLS_H
#define RF_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#define TLS_ERR_BYTES 256u

typedef struct {
	SSL_CTX *ctx;
	BIO_METHOD *src_meth; /* the read BIO over a tls_source_t */
} tls_client_t;

/* Where OpenSSL's read BIO takes ciphertext from. pull copies at most cap
 * bytes into dst and returns how many (0: nothing now, OpenSSL says "want
 * read"); pending says how many bytes wait. Both run inside SSL_* calls, on
 * the loop thread. The owner (a connection) outlives its tls_conn_t. */
typedef struct {
	size_t (*pull)(void *arg, void *dst, size_t cap);
	size_t (*pending)(void *arg);
	void *arg;
} tls_source_t;

/* cacert: a PEM bundle, or NULL for the system store. 0, or -1 with err. */
int tls_client_init(tls_client_t *c, const char *cacert, char *err, size_t err_cap);
void tls_client_free(tls_client_t *c);

/* One connection's TLS state. Owned by its connection (engine/conn.c). */
typedef struct {
	SSL *ssl;
	BIO *in;  /* ciphertext from the network: pulls from src */
	BIO *out; /* ciphertext written by OpenSSL, to send */
	tls_source_t src;
} tls_conn_t;

/* Results of the stepping functions. */
#define TLS_DONE 0          /* handshake finished / bytes returned */
#define TLS_WANT (-2)       /* needs more ciphertext from the network */
#define TLS_CLOSED (-3)     /* the peer sent close_notify */
#define TLS_ERROR (-1)      /* fatal; message in err */

/* host: name for SNI and verification; is_ip: host is an IP literal.
 * src: where received ciphertext is pulled from (copied into t).
 * session: a session to resume, or NULL; a copy of it is offered, so the
 * caller's stays resumable whatever happens to this connection. 0, or -1 with
 * err. */
int tls_conn_init(tls_conn_t *t, tls_client_t *c, const tls_source_t *src, const char *host,
                  bool is_ip, SSL_SESSION *session, char *err, size_t err_cap);
void tls_conn_free(tls_conn_t *t);

/* Network side. */
size_t tls_pending_out(tls_conn_t *t);
size_t tls_take_out(tls_conn_t *t, void *buf, size_t cap); /* bytes copied */

/* Application side. tls_handshake: TLS_DONE, TLS_WANT or TLS_ERROR; on error
 * *verify_failed tells a certificate problem (permanent) from others. */
int tls_handshake(tls_conn_t *t, bool *verify_failed, char *err, size_t err_cap);
/* Plaintext into buf: > 0 bytes, or TLS_WANT, TLS_CLOSED, TLS_ERROR. */
ssize_t tls_read(tls_conn_t *t, void *buf, size_t cap, char *err, size_t err_cap);
/* Queues all of buf as records (ciphertext then waits in tls_take_out).
 * 0 or TLS_ERROR. */
int tls_write(tls_conn_t *t, const void *buf, size_t len, char *err, size_t err_cap);
/* For resumption on the next connection to the same host; NULL if none. A
 * copy, independent of this connection (see tls.c); the caller owns it
 * (SSL_SESSION_free). */
SSL_SESSION *tls_session_get(tls_conn_t *t);
/* True when bytes are buffered on the way in (decrypted or not yet): after a
 * complete response, nothing more should have come. */
bool tls_has_input(tls_conn_t *t);
const char *tls_cipher_name(tls_conn_t *t);
/* True when the handshake resumed an earlier session. */
bool tls_resumed(tls_conn_t *t);

#endif
