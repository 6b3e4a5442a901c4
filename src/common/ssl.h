/* OpenSSL glue: cleanup functions for the OpenSSL types the project uses, and the one place
 * that renders OpenSSL's error queue into a ck_error. */
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cleanup.h"
#include "error.h"

DEFINE_POINTER_CLEANUP(EVP_PKEY, EVP_PKEY_free, EVP_PKEY_free)
DEFINE_POINTER_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free, EVP_PKEY_CTX_free)
DEFINE_POINTER_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free, EVP_MD_CTX_free)
DEFINE_POINTER_CLEANUP(X509, X509_free, X509_free)
DEFINE_POINTER_CLEANUP(X509_CRL, X509_CRL_free, X509_CRL_free)
DEFINE_POINTER_CLEANUP(X509_STORE, X509_STORE_free, X509_STORE_free)
DEFINE_POINTER_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free, X509_STORE_CTX_free)
DEFINE_POINTER_CLEANUP(X509_NAME, X509_NAME_free, X509_NAME_free)
DEFINE_POINTER_CLEANUP(X509_EXTENSION, X509_EXTENSION_free, X509_EXTENSION_free)
DEFINE_POINTER_CLEANUP(ASN1_OBJECT, ASN1_OBJECT_free, ASN1_OBJECT_free)
DEFINE_POINTER_CLEANUP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free, ASN1_OCTET_STRING_free)
DEFINE_POINTER_CLEANUP(ASN1_TIME, ASN1_TIME_free, ASN1_TIME_free)
DEFINE_POINTER_CLEANUP(BIO, BIO_free_all, BIO_free_all)
DEFINE_POINTER_CLEANUP(BIGNUM, BN_free, BN_free)
DEFINE_POINTER_CLEANUP(ECDSA_SIG, ECDSA_SIG_free, ECDSA_SIG_free)
DEFINE_POINTER_CLEANUP(SSL_CTX, SSL_CTX_free, SSL_CTX_free)
DEFINE_POINTER_CLEANUP(SSL, SSL_free, SSL_free)

static inline void sk_X509_pop_freep(STACK_OF(X509) * *p)
{
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}
static inline void sk_X509_CRL_pop_freep(STACK_OF(X509_CRL) * *p)
{
        if (*p)
                sk_X509_CRL_pop_free(*p, X509_CRL_free);
}

/* Sets *reterr to "<what>: <first OpenSSL error>" (or just <what>), clears the OpenSSL error
 * queue, and returns code. */
int ck_ssl_error(struct ck_error **reterr, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Loads a PEM private key from dirfd/path (AT_FDCWD for a plain path): a regular file of at most
 * 64 KiB, read with read(2) into one buffer that is wiped after parsing, so no stdio or BIO
 * buffer keeps a copy. A key file that group or others can read is loaded with a warning. */
int ck_ssl_key_load_at(int dirfd, const char *path, EVP_PKEY **ret, struct ck_error **reterr);

/* SHA-256 / SHA-384 of one buffer; out must hold 32 / 48 bytes. */
int ck_sha256(const void *data, size_t len, uint8_t out[32]);
int ck_sha384(const void *data, size_t len, uint8_t out[48]);
