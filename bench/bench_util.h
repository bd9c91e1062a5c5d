/* bench/bench_util.h: the helpers every benchmark shares: clocks, exits, medians, the
   TG_BENCH_* settings and the char-LM they train. Header-only: each benchmark is one file. */
#ifndef TG_BENCH_BENCH_UTIL_H
#define TG_BENCH_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"

/* Seconds on clock (CLOCK_MONOTONIC for wall time). */
static inline double bench_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds of wall time. */
static inline double bench_now(void)
{
    return bench_seconds(CLOCK_MONOTONIC);
}

/* Ends the benchmark: "<its file>: what: msg" on stderr, exit status 1 (the helpers
   below, which have no file of their own, say "bench"). */
#define bench_die(what, msg) bench_die_in(__FILE__, (what), (msg))
static inline void bench_die_in(const char *file, const char *what, const char *msg)
{
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    fprintf(stderr, "%.*s: %s: %s\n", (int)strcspn(base, "."), base, what, msg);
    exit(1);
}

static inline int bench_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The median of v[0..n-1] (n >= 1); sorts v. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

/* The next size of the comma-separated list TG_BENCH_HIDDEN (default "128,512") at *p
   (NULL: start the list), or 0 at its end; exits on a malformed list. */
static inline int bench_next_hidden(const char **p)
{
    if (!*p) {
        const char *hs = getenv("TG_BENCH_HIDDEN");
        *p = hs && *hs ? hs : "128,512";
    }
    if (!**p)
        return 0;
    char *end;
    long h = strtol(*p, &end, 10);
    if (end == *p || h < 1 || h > 1 << 16)
        bench_die_in("bench", "TG_BENCH_HIDDEN", "expected a comma-separated list of sizes");
    *p = *end == ',' ? end + 1 : end;
    return (int)h;
}

/* The benchmarks' char-LM: `layers` cells of `cell`, `hidden` wide, over a one-hot
   vocabulary of BENCH_VOCAB characters, in float, weights uniform in +-0.08 drawn from
   rng seeded with 1. Returns its parameters; exits when it cannot be built. */
#define BENCH_VOCAB 65
static inline tg_params *bench_charlm_new(tg_charlm *m, const tg_cell_type *cell, int layers,
                                          int hidden, tg_rng *rng)
{
    tg_charlm_config cfg = {.cell = cell, .vocab = BENCH_VOCAB, .layers = layers,
                            .hidden = hidden, .embed = 0, .dropout = 0.0};
    tg_init init = {.kind = TG_INIT_UNIFORM, .scale = 0.08, .forget_bias_one = false};
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng_seed(rng, 1);
    if (!ps || tg_charlm_init(m, ps, &cfg, &init, rng) != TG_OK)
        bench_die_in("bench", "charlm init", tg_last_error());
    return ps;
}

/* A char-LM set up to train on random batches of B sequences of T tokens: RMSprop with lr
   2e-3, a tape, the recurrent state and the token buffers. */
typedef struct bench_trainer {
    tg_rng rng;
    tg_charlm m;
    tg_params *ps;
    tg_optim *opt;
    tg_tape *tape;
    tg_stack_state *state;
    int32_t *in, *target;   /* (B*T) tokens each */
    int64_t B, T;
} bench_trainer;

static inline void bench_trainer_init(bench_trainer *b, const tg_cell_type *cell, int layers,
                                      int hidden, int64_t B, int64_t T)
{
    b->B = B;
    b->T = T;
    b->ps = bench_charlm_new(&b->m, cell, layers, hidden, &b->rng);
    tg_optim_config oc = tg_optim_defaults(TG_RMSPROP);
    oc.lr = 2e-3;
    b->opt = tg_optim_new(b->ps, &oc);
    b->tape = tg_tape_new();
    b->state = tg_stack_state_new(&b->m.rnn, TG_F32, B);
    b->in = malloc((size_t)(B * T) * sizeof *b->in);
    b->target = malloc((size_t)(B * T) * sizeof *b->target);
    if (!b->opt || !b->tape || !b->state || !b->in || !b->target)
        bench_die_in("bench", "setup", "out of memory");
}

/* Fresh random inputs and targets. */
static inline void bench_trainer_batch(bench_trainer *b)
{
    for (int64_t i = 0; i < b->B * b->T; i++) {
        b->in[i] = (int32_t)tg_rng_below(&b->rng, BENCH_VOCAB);
        b->target[i] = (int32_t)tg_rng_below(&b->rng, BENCH_VOCAB);
    }
}

static inline void bench_trainer_free(bench_trainer *b)
{
    free(b->in);
    free(b->target);
    tg_stack_state_free(b->state);
    tg_tape_free(b->tape);
    tg_optim_free(b->opt);
    tg_charlm_deinit(&b->m);
    tg_params_free(b->ps);
}

#endif /* TG_BENCH_BENCH_UTIL_H */
