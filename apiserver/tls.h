/*
 * tls.h: TLS server context for kuala-apiserver.
 */
#ifndef KUALA_APISERVER_TLS_H
#define KUALA_APISERVER_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Build a server SSL_CTX from cert_file + key_file (PEM), or, when both are
 * NULL, from a generated self-signed certificate for 127.0.0.1/localhost.
 * *cert_pem receives the certificate PEM (kuala_malloc'ed) for kubeconfig
 * certificate-authority-data. Returns 0 or a KUALA_E* code with a message in
 * err. */
int emu_tls_ctx(SSL_CTX **out, char **cert_pem, const char *cert_file, const char *key_file,
                char *err, size_t errlen);

#endif /* KUALA_APISERVER_TLS_H */
