/*
 * tls.c: the emulator's TLS server context: either the operator's
 * certificate and key files, or a freshly generated self-signed P-256
 * certificate for 127.0.0.1 / localhost (valid one year), whose PEM is
 * handed back so the kubeconfig can carry it as certificate-authority-data.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "tls.h"

static char *bio_string(BIO *b)
{
  char *data;
  long n = BIO_get_mem_data(b, &data);
  return kuala_strndup(data, (size_t)n);
}

static int add_ext(X509 *cert, int nid, const char *value)
{
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ex) {
    return -1;
  }
  X509_add_ext(cert, ex, -1);
  X509_EXTENSION_free(ex);
  return 0;
}

static void ssl_err(char *err, size_t errlen, const char *what)
{
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  snprintf(err, errlen, "%s: %s", what, buf);
}

int emu_tls_ctx(SSL_CTX **out, char **cert_pem, const char *cert_file, const char *key_file,
                char *err, size_t errlen)
{
  *out = NULL;
  *cert_pem = NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    ssl_err(err, errlen, "SSL_CTX_new");
    return KUALA_EIO;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (cert_file && key_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
      ssl_err(err, errlen, cert_file);
      SSL_CTX_free(ctx);
      return KUALA_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      ssl_err(err, errlen, key_file);
      SSL_CTX_free(ctx);
      return KUALA_EINVAL;
    }
    FILE *f = fopen(cert_file, "r");
    if (f) {
      char buf[65536];
      size_t n = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      *cert_pem = kuala_strndup(buf, n);
    }
    *out = ctx;
    return 0;
  }
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  if (!key || !cert) {
    ssl_err(err, errlen, "key generation");
    EVP_PKEY_free(key);
    X509_free(cert);
    SSL_CTX_free(ctx);
    return KUALA_EIO;
  }
  X509_set_version(cert, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) == 1) {
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
  }
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"kuala-apiserver", -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  add_ext(cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign");
  add_ext(cert, NID_ext_key_usage, "serverAuth");
  add_ext(cert, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  if (!X509_sign(cert, key, EVP_sha256())) {
    ssl_err(err, errlen, "X509_sign");
    EVP_PKEY_free(key);
    X509_free(cert);
    SSL_CTX_free(ctx);
    return KUALA_EIO;
  }
  SSL_CTX_use_certificate(ctx, cert);
  SSL_CTX_use_PrivateKey(ctx, key);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  *cert_pem = bio_string(b);
  BIO_free(b);
  EVP_PKEY_free(key);
  X509_free(cert);
  *out = ctx;
  return 0;
}
