/* Shared between policy.c (model, flags, decision) and policy-json.c (the JSON loader). */
#pragma once

#include "policy.h"
#include "refvalues.h"

void broker_rule_init_defaults(struct broker_rule *r);
void broker_rule_clear(struct broker_rule *r);
/* Appends a normalised image ID (or task-config digest) to a list of at most
 * BROKER_POLICY_MAX_IMAGES; what names the list in errors. */
int broker_id_list_add(char (**list)[BROKER_IMAGE_ID_LEN + 1], size_t *n, const char *what, const char *s,
                       struct ck_error **reterr);
/* Pins the values of rv in r; a register pinned both directly and in rv is an error. */
int broker_rule_apply_refvalues(struct broker_rule *r, const struct attest_refvalues *rv, const char *what,
                                struct ck_error **reterr);
void broker_tc_rules_free(struct broker_tc_rules *t);
