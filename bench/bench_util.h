/* bench/bench_util.h: the helpers every benchmark shares: a clock and the TG_BENCH_*
   environment settings (threads, quick mode). Header-only: each benchmark is one file. */
#ifndef TG_BENCH_BENCH_UTIL_H
#define TG_BENCH_BENCH_UTIL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on clock (CLOCK_MONOTONIC for wall time). */
static inline double bench_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* TG_BENCH_THREADS (a positive integer), else 2: the machine the tables were taken on. */
static inline int bench_threads(void)
{
    const char *e = getenv("TG_BENCH_THREADS");
    return e && atoi(e) > 0 ? atoi(e) : 2;
}

/* TG_BENCH_QUICK set to anything but "0": fewer and shorter batches, for a smoke run. */
static inline bool bench_quick(void)
{
    const char *q = getenv("TG_BENCH_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

#endif /* TG_BENCH_BENCH_UTIL_H */
