/* The broker's RA-TLS server certificate, checked by its client (peer.h). */
#include <errno.h>
#include <string.h>

#include "peer.h"
#include "ssl.h"
#include "ratls.h"
#include "verify.h"

/* TD attributes byte 0: DEBUG and the other TD-under-debug bits. */
#define TD_ATTR_TUD_MASK 0xffu

static bool tcb_acceptable(enum attest_tcb_status s)
{
        /* Patched but not fully hardened or configured platforms still attest their TD; an
         * out-of-date TCB or one that asks for a relaunch does not. */
        return s == ATTEST_TCB_UP_TO_DATE || s == ATTEST_TCB_SW_HARDENING_NEEDED ||
               s == ATTEST_TCB_CONFIGURATION_NEEDED || s == ATTEST_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED;
}

int broker_peer_check(const struct broker_peer_policy *p, X509 *cert, time_t now, const char **ret_reason,
                      struct ck_error **reterr)
{
        _cleanup_(attest_ratls_evidence_freep) struct attest_ratls_evidence *ev = NULL;
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
        _cleanup_error_ struct ck_error *e = NULL;
        struct attest_verify_opts opts = {.now = now, .root = p->root};
        const struct attest_measurements *m;
        const char *mismatch;
        int r;

        if (!oid || X509_get_ext_by_OBJ(cert, oid, -1) < 0) {
                *ret_reason = "no_evidence";
                return ck_error_set(
                        reterr, -EKEYREJECTED,
                        "the broker's certificate carries no attestation evidence (start it with "
                        "-a tdx, or pin it with #sha256:)");
        }
        r = attest_ratls_verify_cert(cert, p->collateral, &opts, &ev, &e);
        if (r < 0) {
                const char *msg = ck_error_message(e, r);

                *ret_reason = strstr(msg, "RA-TLS: quote") ? "quote_invalid" : "binding_invalid";
                return ck_error_set(reterr, r, "%s", msg);
        }
        m = &ev->result->m;
        if (ev->result->tee_type != ATTEST_TEE_TDX || (m->td_attributes[0] & TD_ATTR_TUD_MASK)) {
                *ret_reason = "debug_td";
                return ck_error_set(reterr, -EKEYREJECTED, "the broker's TD is not a production TDX TD");
        }
        if (!tcb_acceptable(ev->result->status)) {
                *ret_reason = "tcb_status";
                return ck_error_set(reterr, -EKEYREJECTED, "the broker's platform TCB is %s",
                                    attest_tcb_status_to_string(ev->result->status));
        }
        mismatch = attest_refvalues_check(&p->refvalues, m);
        if (mismatch) {
                *ret_reason = mismatch;
                return ck_error_set(reterr, -EKEYREJECTED,
                                    "the broker's TD does not match kms-broker-reference-values (%s)",
                                    mismatch);
        }
        return 0;
}
