/* Scope-bound cleanup: the only place cleanup attributes and ownership helpers are defined.
 *
 * Every cleanup variable is initialised where it is declared; ownership leaves a scope through
 * TAKE_PTR()/TAKE_FD(), which also disarm the cleanup. Third-party types get their cleanup
 * functions in the matching glue header (ssl.h, json.h, ...). */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                __typeof__(p) _tp_ = (p);                                                                   \
                (p) = NULL;                                                                                 \
                _tp_;                                                                                       \
        })

#define TAKE_FD(fd)                                                                                         \
        ({                                                                                                  \
                int _tf_ = (fd);                                                                            \
                (fd) = -1;                                                                                  \
                _tf_;                                                                                       \
        })

/* Defines `name##p(type **)` calling `func(*p)` when *p is non-NULL. */
#define DEFINE_POINTER_CLEANUP(type, func, name)                                                            \
        static inline void name##p(type **p)                                                                \
        {                                                                                                   \
                if (*p)                                                                                     \
                        func(*p);                                                                           \
        }

static inline void freep(void *p)
{
        free(*(void **)p);
}

/* close() that keeps errno, for cleanup paths. Returns -1 so callers can write fd = safe_close(fd). */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd)
{
        *fd = safe_close(*fd);
}

static inline void fclosep(FILE **f)
{
        if (*f) {
                int saved = errno;
                fclose(*f);
                errno = saved;
        }
}

#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Marks an intended switch fall-through for both gcc and clang (-Wimplicit-fallthrough). */
#define _fallthrough_ __attribute__((fallthrough))
