/* Fuzz target: the PCK certificate's SGX extension parser (OpenSSL ASN.1 walk). The input is
 * the DER value of extension 1.2.840.113741.1.13.1, placed into a certificate; real PCK chains
 * only reach the parser after their signature verified, so this is the way to exercise it. */
#include <openssl/x509.h>
#include <stdint.h>

#include "pck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        X509 *x = X509_new();
        ASN1_OBJECT *obj = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        X509_EXTENSION *ext = NULL;
        struct attest_pck_info info;
        struct ck_error *e = NULL;

        if (x && obj && os && size < (1 << 20) && ASN1_OCTET_STRING_set(os, data, (int)size) == 1)
                ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
        if (ext && X509_add_ext(x, ext, -1) == 1)
                (void)attest_pck_sgx_ext_parse(x, &info, &e);
        ck_error_free(e);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
        X509_free(x);
        return 0;
}
