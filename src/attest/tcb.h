/* Internal: the TCB Info / QE Identity checks of tcb.c, called in order by verify.c. */
#pragma once

#include "collateral-private.h"
#include "quote.h"
#include "verify.h"

/* Step 5: TCB Info kind and version for this quote, FMSPC and PCE-ID against the PCK. */
int attest_tcb_check_info(const struct attest_tcb_info *t, const struct attest_quote *q,
                          const struct attest_pck_info *pck, struct ck_error **reterr);
/* Step 6: QE Identity kind and version for this quote. */
int attest_tcb_check_qe_identity_kind(const struct attest_qe_identity *qe, const struct attest_quote *q,
                                      struct ck_error **reterr);
/* Step 7: MRSIGNERSEAM and SEAMATTRIBUTES against tdxModule or the TDX_%02X identity; *ret_id is
 * that identity (NULL when the base tdxModule was used). */
int attest_tcb_check_module(const struct attest_tcb_info *t, const struct attest_quote *q,
                            const struct attest_module_identity **ret_id, struct ck_error **reterr);
const struct attest_module_identity *attest_tcb_find_module(const struct attest_tcb_info *t, uint8_t major);
/* Step 10: the QE report against the QE Identity; *ret_level is the QE TCB level. */
int attest_tcb_check_qe_report(const struct attest_qe_identity *qe, const uint8_t *report,
                               const struct attest_isv_level **ret_level, struct ck_error **reterr);
/* Step 12: TCB level matching, module and QE status merge, TD relaunch, advisory IDs. Fills
 * res->status, advisory_ids, n_advisory_ids and tcb_eval_number. */
int attest_tcb_match(const struct attest_tcb_info *t, const struct attest_quote *q,
                     const struct attest_pck_info *pck, const struct attest_module_identity *mi,
                     const struct attest_isv_level *qe_level, struct attest_result *res,
                     struct ck_error **reterr);
