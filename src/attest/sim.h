/* The simulated TD: a complete test PKI and a software TD whose quotes are byte-for-byte v4 and
 * verified by exactly the same code as real ones (verify.h); only the trust anchor differs.
 *
 * Contract header (owned by the attest module). `conker tdx-sim init DIR` writes:
 *   DIR/root-ca.pem            the simulated root (CN "Conker SIMULATED SGX Root CA")
 *   DIR/collateral.json        dcap-qvl layout: TCB Info + QE Identity (signed), CRLs, chains
 *   DIR/pck-chain.pem          PCK leaf (real-format SGX extension), PCK Platform CA, root
 *   DIR/pck-key.pem, DIR/qe-ak-key.pem   the PCK key and the QE attestation key (mode 0600)
 *   DIR/profile.json           MRTD, RTMR0-2, MRSEAM, TD attributes, XFAM, TEE_TCB_SVN
 * Every certificate of the sim PKI says SIMULATED in its subject, the quote header's user_data
 * starts with "CONKER-SIMULATED", and attest_verify_quote() marks any result verified against a
 * root other than the pinned Intel root as `simulated`: a policy accepts such results only when
 * it was told to trust that root explicitly. The TD attributes are those of a production TD
 * (DEBUG=0, SEPT_VE_DISABLE=1) so that the same policy rules are exercised as on hardware. */
#pragma once

#include <stdint.h>
#include <time.h>

#include "error.h"

struct attest_sim_init_opts {
        time_t now;               /* collateral window starts here */
        unsigned validity_days;   /* certificates and collateral; default 365 */
        const char *profile_json; /* optional: measurement profile to use instead of defaults */
};

int attest_sim_init(const char *dir, const struct attest_sim_init_opts *opts, struct ck_error **reterr);
