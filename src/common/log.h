/* Logging for daemons and tools: one line per message on stderr (or a file), with level and
 * time. Messages are written by the caller; never pass a password, token or secret to these. */
#pragma once

#include <stdarg.h>

enum ck_log_level {
        CK_LOG_ERROR,
        CK_LOG_WARN,
        CK_LOG_INFO,
        CK_LOG_DEBUG,
        _CK_LOG_LEVEL_MAX,
};

const char *ck_log_level_to_string(enum ck_log_level l);
int ck_log_level_from_string(const char *s); /* -EINVAL when unknown */

void ck_log_set_level(enum ck_log_level l);
enum ck_log_level ck_log_get_level(void);
/* Program name shown in each line ("conkerd", "conker-broker"...); the pointer is kept. */
void ck_log_set_ident(const char *ident);
/* Log as JSON lines ({"ts","level","ident","msg"}) instead of plain text. */
void ck_log_set_json(int on);

void ck_log(enum ck_log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_logv(enum ck_log_level l, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_error(...) ck_log(CK_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  ck_log(CK_LOG_WARN, __VA_ARGS__)
#define log_info(...)  ck_log(CK_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                                      \
        do {                                                                                                \
                if (ck_log_get_level() >= CK_LOG_DEBUG)                                                     \
                        ck_log(CK_LOG_DEBUG, __VA_ARGS__);                                                  \
        } while (0)
