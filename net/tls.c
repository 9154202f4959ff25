/* net/tls.c: TLS client over memory BIOs (see tls.h).
 *
 * The loop feeds ciphertext in and takes ciphertext out; this file only
 * drives OpenSSL and turns its errors into one readable line. Certificate and
 * host-name verification are always on; nothing here can turn them off. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void tls_error_text(char *err, size_t cap, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	if (e) {
		ERR_error_string_n(e, buf, sizeof buf);
		/* The library's own code is noise to a person: keep the reason. */
		const char *reason = ERR_reason_error_string(e);
		snprintf(err, cap, "%s: %s", what, reason ? reason : buf);
	} else {
		snprintf(err, cap, "%s", what);
	}
	ERR_clear_error();
}

/* ---- the read BIO over a tls_source_t ---------------------------------- */

static int src_read(BIO *b, char *dst, size_t cap, size_t *got)
{
	tls_source_t *s = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	size_t n = cap ? s->pull(s->arg, dst, cap) : 0;
	*got = n;
	if (!n) {
		BIO_set_retry_read(b); /* "want read", never end of file */
		return 0;
	}
	return 1;
}

static long src_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	tls_source_t *s = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_PENDING: return (long)s->pending(s->arg);
	case BIO_CTRL_FLUSH: return 1;
	default: return 0;
	}
}

static int src_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

int tls_client_init(tls_client_t *c, const char *cacert, char *err, size_t err_cap)
{
	memset(c, 0, sizeof *c);
	c->src_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringfill source");
	if (!c->src_meth || BIO_meth_set_read_ex(c->src_meth, src_read) != 1 ||
	    BIO_meth_set_ctrl(c->src_meth, src_ctrl) != 1 ||
	    BIO_meth_set_create(c->src_meth, src_create) != 1) {
		tls_error_text(err, err_cap, "TLS: cannot create the receive BIO");
		tls_client_free(c);
		return -1;
	}
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) {
		tls_error_text(err, err_cap, "TLS: cannot create context");
		tls_client_free(c);
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT);
	/* The loop hands over whatever records are ready: partial writes would
	 * only complicate the send path. */
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(c->ctx, alpn, sizeof alpn - 1);
	int ok = cacert ? SSL_CTX_load_verify_locations(c->ctx, cacert, NULL)
	                : SSL_CTX_set_default_verify_paths(c->ctx);
	if (ok != 1) {
		char what[300];
		snprintf(what, sizeof what, "%s: cannot load CA certificates",
		         cacert ? cacert : "system store");
		tls_error_text(err, err_cap, what);
		tls_client_free(c);
		return -1;
	}
	return 0;
}

void tls_client_free(tls_client_t *c)
{
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->src_meth)
		BIO_meth_free(c->src_meth);
	c->ctx = NULL;
	c->src_meth = NULL;
}

int tls_conn_init(tls_conn_t *t, tls_client_t *c, const tls_source_t *src, const char *host,
                  bool is_ip, SSL_SESSION *session, char *err, size_t err_cap)
{
	memset(t, 0, sizeof *t);
	t->src = *src;
	t->ssl = SSL_new(c->ctx);
	t->in = BIO_new(c->src_meth);
	t->out = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->in || !t->out)
		goto fail;
	BIO_set_data(t->in, &t->src);
	SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both BIOs now */
	SSL_set_connect_state(t->ssl);
	if (is_ip) {
		X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(p, host) != 1)
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(t->ssl, host) != 1 || SSL_set1_host(t->ssl, host) != 1)
			goto fail;
	}
	if (session) {
		/* A copy: the caller's session must outlive this connection as
		 * resumable (see tls_session_get). A failed copy or offer only
		 * costs a full handshake. */
		SSL_SESSION *copy = SSL_SESSION_dup(session);
		if (copy) {
			SSL_set_session(t->ssl, copy);
			SSL_SESSION_free(copy);
		}
		ERR_clear_error();
	}
	return 0;
fail:
	tls_error_text(err, err_cap, "TLS: cannot set up connection");
	if (t->ssl) {
		SSL_free(t->ssl); /* frees the BIOs if they were attached */
	} else {
		BIO_free(t->in);
		BIO_free(t->out);
	}
	memset(t, 0, sizeof *t);
	return -1;
}

void tls_conn_free(tls_conn_t *t)
{
	if (t->ssl)
		SSL_free(t->ssl);
	memset(t, 0, sizeof *t);
}

size_t tls_pending_out(tls_conn_t *t)
{
	return BIO_ctrl_pending(t->out);
}

size_t tls_take_out(tls_conn_t *t, void *buf, size_t cap)
{
	int n = BIO_read(t->out, buf, (int)(cap > (size_t)INT32_MAX ? INT32_MAX : cap));
	return n > 0 ? (size_t)n : 0;
}

int tls_handshake(tls_conn_t *t, bool *verify_failed, char *err, size_t err_cap)
{
	*verify_failed = false;
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return TLS_DONE;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return TLS_WANT;
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK) {
		*verify_failed = true;
		snprintf(err, err_cap, "TLS certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
		ERR_clear_error();
		return TLS_ERROR;
	}
	tls_error_text(err, err_cap, "TLS handshake failed");
	return TLS_ERROR;
}

ssize_t tls_read(tls_conn_t *t, void *buf, size_t cap, char *err, size_t err_cap)
{
	size_t got = 0;
	int r = SSL_read_ex(t->ssl, buf, cap, &got);
	if (r == 1)
		return (ssize_t)got;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return TLS_WANT;
	if (e == SSL_ERROR_ZERO_RETURN)
		return TLS_CLOSED;
	tls_error_text(err, err_cap, "TLS read failed");
	return TLS_ERROR;
}

int tls_write(tls_conn_t *t, const void *buf, size_t len, char *err, size_t err_cap)
{
	const char *p = buf;
	while (len) {
		size_t put = 0;
		/* Writes into a memory BIO never block: this loop ends. */
		if (SSL_write_ex(t->ssl, p, len, &put) != 1) {
			tls_error_text(err, err_cap, "TLS write failed");
			return TLS_ERROR;
		}
		p += put;
		len -= put;
	}
	return 0;
}

/* The caller gets a copy, never a reference to the connection's own session:
 * SSL_free on a connection that did not send close_notify (ours never do: the
 * server closes, or we drop an idle connection) calls ssl_clear_bad_session,
 * which marks the connection's session not resumable, in place. A shared
 * reference would then be refused by the next ClientHello (no pre_shared_key
 * extension, a full handshake every time). tls_conn_init offers a copy for the
 * same reason. */
SSL_SESSION *tls_session_get(tls_conn_t *t)
{
	SSL_SESSION *s = SSL_get0_session(t->ssl);
	if (!s || !SSL_SESSION_is_resumable(s))
		return NULL;
	SSL_SESSION *copy = SSL_SESSION_dup(s);
	ERR_clear_error();
	return copy;
}

bool tls_has_input(tls_conn_t *t)
{
	return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->in) > 0;
}

bool tls_resumed(tls_conn_t *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

const char *tls_cipher_name(tls_conn_t *t)
{
	return SSL_get_cipher_name(t->ssl);
}
