/* The monotonic clock, for deadlines and durations (never for wall-clock times). */
#pragma once

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
