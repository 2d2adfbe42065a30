/* LD_PRELOAD shim for wrk in the TLS handshake scenario (bench/run.sh tls-close): wrk reuses one
 * SSL object per connection slot (SSL_shutdown + SSL_clear, then SSL_connect again), and SSL_clear
 * keeps the last session, so every reconnect offers it and a server with a session cache or tickets
 * resumes instead of doing a full handshake. This drops the session after SSL_clear, so every
 * connection is a full handshake whatever the server allows. Built by bench/run.sh with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_set_session(SSL *s, SSL_SESSION *session);

int SSL_clear(SSL *s) {
    static int (*real)(SSL *) = NULL;
    if (real == NULL) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    int r = real(s);
    SSL_set_session(s, NULL);
    return r;
}
