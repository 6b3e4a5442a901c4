/* The monotonic clock, for deadlines and durations (never for wall-clock times), and deadlines
 * for pthread_cond_timedwait(). */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline int64_t ck_now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t ck_now_ms(void)
{
        return ck_now_us() / 1000;
}

/* ns nanoseconds (>= 0) from now on clock, as pthread_cond_timedwait() takes it: CLOCK_MONOTONIC
 * for a condition variable set to that clock, CLOCK_REALTIME for a default one. */
static inline struct timespec ck_deadline_ns(clockid_t clock, int64_t ns)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec += (long)(ns % 1000000000);
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (deadlines from
 * ck_deadline_ns(CLOCK_MONOTONIC, ...)), so that a step of the wall clock moves none of them. */
static inline void ck_cond_init_monotonic(pthread_cond_t *cond)
{
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(cond, &ca);
        pthread_condattr_destroy(&ca);
}
