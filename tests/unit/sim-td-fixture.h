/* A simulated TD for unit tests: `attest_sim_init` into a fresh temporary directory, opened as
 * the TEE, with its root CA loaded for the verifier. Test code only. */
#pragma once

#include <fcntl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "fs.h"
#include "sim.h"
#include "tee.h"
#include "verify.h"

struct sim_td {
        char tmp[64], simdir[128], statedir[128], colpath[192]; /* colpath: its collateral.json */
        struct attest_tee *tee;
        X509 *root;
};

/* prefix: the temporary directory's name under /tmp, e.g. "ck-test-apiev". */
static int sim_td_setup(struct sim_td *t, const char *prefix)
{
        struct attest_sim_init_opts o = {.validity_days = 30};
        struct attest_tee_config cfg = {.kind = ATTEST_TEE_KIND_SIM};
        char p[256];

        snprintf(t->tmp, sizeof(t->tmp), "/tmp/%s-XXXXXX", prefix);
        if (!mkdtemp(t->tmp))
                return -1;
        snprintf(t->simdir, sizeof(t->simdir), "%s/sim", t->tmp);
        snprintf(t->statedir, sizeof(t->statedir), "%s/state", t->tmp);
        snprintf(t->colpath, sizeof(t->colpath), "%s/collateral.json", t->simdir);
        cfg.sim_dir = t->simdir;
        cfg.sim_state_dir = t->statedir;
        if (attest_sim_init(t->simdir, &o, NULL) < 0 || attest_tee_open(&cfg, &t->tee, NULL) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/root-ca.pem", t->simdir);
        return attest_root_load_file(p, &t->root, NULL);
}

static int sim_td_teardown(struct sim_td *t)
{
        attest_tee_free(t->tee);
        X509_free(t->root);
        return ck_rm_rf_at(AT_FDCWD, t->tmp);
}
