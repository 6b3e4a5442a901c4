/* cmocka needs these headers before its own; every unit test includes this file first. */
#pragma once
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A case that cannot run here calls skip(). cmocka still exits 0 for the binary then, which the
 * test harness would count as a pass; so a skip is remembered, and a binary in which nothing
 * failed but something was skipped exits 77 (meson's SKIP), after printing why. Files that run
 * more than one group (cmocka_run_group_tests_name) return ck_group_result() of their sum. */
static int ck_cases_skipped;

#undef skip
#define skip()                                                                                              \
        do {                                                                                                \
                ck_cases_skipped = 1;                                                                       \
                _skip(__FILE__, __LINE__);                                                                  \
        } while (0)

static inline int ck_group_result(int failed)
{
        return failed != 0 ? failed : ck_cases_skipped ? 77 : 0;
}

#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)                                    \
        ck_group_result(_cmocka_run_group_tests(#group_tests, group_tests,                                  \
                                                sizeof(group_tests) / sizeof((group_tests)[0]),             \
                                                group_setup, group_teardown))
