/* bench/bench_ops.c: per-op overhead of the tape (record + run one small op), in ns. */
/*
 * Prints key=value lines:
 *   op name= shape= ns_per_op= ns_arith= overhead_ns=     forward, recorded on a tape
 *   opbw name= shape= ns_per_op= ns_arith= overhead_ns=   forward + backward
 * ns_per_op is the best (over several batches) time per op of a chain of ops recorded on
 * a tape (the tape is reset every CHAIN ops, its cost included); ns_arith is the best time
 * of the same arithmetic written as a plain loop over buffers of the same size and count
 * (the library's vector tanh tg_vtanhf and a loop for its derivative, or tg_sgemm for
 * matmul); overhead_ns is their difference: what the tape adds. The 1x1 shape shows the
 * fixed cost of an op.
 * Threads: TG_BENCH_THREADS (default 2); TG_BENCH_QUICK=1 shortens the runs.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "tapegrad.h"
#include "tensor/vmath_internal.h"   /* the library's own vector tanh, for the baseline */

enum { CHAIN = 64 };

static int batches = 9;
static double batch_s = 0.05;

/* Best-of-batches seconds per call of fn(ctx), each call doing `ops` ops. */
static double best_per_op(void (*fn)(void *), void *ctx, int ops)
{
    double t0 = bench_now();
    int n = 0;
    do {
        fn(ctx);
        n++;
    } while (bench_now() - t0 < 0.02);
    int per = (int)(batch_s / ((bench_now() - t0) / n)) + 1;
    double best = INFINITY;
    for (int b = 0; b < batches; b++) {
        double t = bench_now();
        for (int i = 0; i < per; i++)
            fn(ctx);
        double s = (bench_now() - t) / per / ops;
        if (s < best)
            best = s;
    }
    return best;
}

/* ---- tanh ----------------------------------------------------------------------------- */

typedef struct tanh_ctx {
    tg_tape *tape;
    tg_tensor *x;           /* (R,C) leaf requiring grad */
    float *bufs;            /* CHAIN + 2 plain buffers for the arithmetic baseline */
    int64_t n;
    bool backward;
} tanh_ctx;

static void tanh_taped(void *p)
{
    tanh_ctx *c = p;
    tg_tape_reset(c->tape);
    tg_tensor *y = c->x;
    for (int i = 0; i < CHAIN; i++)
        y = tg_tanh(c->tape, y);
    if (c->backward) {
        tg_tensor *s = tg_sum(c->tape, y);
        if (tg_backward(c->tape, s) != TG_OK) {
            fprintf(stderr, "bench_ops: %s\n", tg_tape_errmsg(c->tape));
            exit(1);
        }
    } else if (!y) {
        fprintf(stderr, "bench_ops: %s\n", tg_tape_errmsg(c->tape));
        exit(1);
    }
}

/* The same arithmetic: y_{i+1} = tanh(y_i) into fresh buffers (single-threaded); backward:
 * g_i = g_{i+1} * (1 - y_{i+1}^2) through the chain. */
static void tanh_plain(void *p)
{
    tanh_ctx *c = p;
    const int64_t n = c->n;
    for (int i = 0; i < CHAIN; i++) {
        const float *src = c->bufs + (size_t)i * (size_t)n;
        float *dst = c->bufs + (size_t)(i + 1) * (size_t)n;
        tg_vtanhf(src, dst, n);
    }
    if (c->backward) {
        float *g = c->bufs + (size_t)(CHAIN + 1) * (size_t)n;   /* running gradient */
        for (int64_t j = 0; j < n; j++)
            g[j] = 1.0f;
        for (int i = CHAIN; i >= 1; i--) {
            const float *y = c->bufs + (size_t)i * (size_t)n;
            for (int64_t j = 0; j < n; j++)
                g[j] *= 1.0f - y[j] * y[j];
        }
    }
    __asm__ volatile("" : : "r"(c->bufs) : "memory");
}

static void bench_tanh(int64_t rows, int64_t cols, bool backward)
{
    tanh_ctx c = {0};
    c.tape = tg_tape_new();
    c.x = tg_tensor_new(TG_F32, 2, (const int64_t[]){rows, cols});
    c.n = rows * cols;
    c.bufs = malloc((size_t)(CHAIN + 2) * (size_t)c.n * sizeof *c.bufs);
    c.backward = backward;
    if (!c.tape || !c.x || !c.bufs || tg_tensor_requires_grad(c.x) != TG_OK) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor_fill_uniform(c.x, &rng, -2.0, 2.0);
    memcpy(c.bufs, c.x->data, (size_t)c.n * sizeof *c.bufs);
    double taped = best_per_op(tanh_taped, &c, CHAIN);
    double plain = best_per_op(tanh_plain, &c, CHAIN);
    printf("%s name=tanh shape=%lldx%lld ns_per_op=%.0f ns_arith=%.0f overhead_ns=%.0f\n",
           backward ? "opbw" : "op", (long long)rows, (long long)cols, taped * 1e9,
           plain * 1e9, (taped - plain) * 1e9);
    tg_tape_free(c.tape);
    tg_tensor_free(c.x);
    free(c.bufs);
}

/* ---- matmul ------------------------------------------------------------------------------ */

typedef struct mm_ctx {
    tg_tape *tape;
    tg_tensor *a, *w;       /* (M,K) and (K,N) leaves */
    float *c;               /* CHAIN plain outputs */
    int64_t M, K, N;
} mm_ctx;

static void mm_taped(void *p)
{
    mm_ctx *c = p;
    tg_tape_reset(c->tape);
    for (int i = 0; i < CHAIN; i++)
        if (!tg_matmul(c->tape, c->a, c->w)) {
            fprintf(stderr, "bench_ops: %s\n", tg_tape_errmsg(c->tape));
            exit(1);
        }
}

static void mm_plain(void *p)
{
    mm_ctx *c = p;
    for (int i = 0; i < CHAIN; i++)
        tg_sgemm(false, false, c->M, c->N, c->K, 1.0f, c->a->data, c->K, c->w->data, c->N,
                 0.0f, c->c + (size_t)i * (size_t)(c->M * c->N), c->N);
}

static void bench_matmul(int64_t M, int64_t K, int64_t N)
{
    mm_ctx c = {.M = M, .K = K, .N = N};
    c.tape = tg_tape_new();
    c.a = tg_tensor_new(TG_F32, 2, (const int64_t[]){M, K});
    c.w = tg_tensor_new(TG_F32, 2, (const int64_t[]){K, N});
    c.c = malloc((size_t)CHAIN * (size_t)(M * N) * sizeof *c.c);
    if (!c.tape || !c.a || !c.w || !c.c || tg_tensor_requires_grad(c.a) != TG_OK ||
        tg_tensor_requires_grad(c.w) != TG_OK) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor_fill_uniform(c.a, &rng, -1.0, 1.0);
    tg_tensor_fill_uniform(c.w, &rng, -1.0, 1.0);
    double taped = best_per_op(mm_taped, &c, CHAIN);
    double plain = best_per_op(mm_plain, &c, CHAIN);
    printf("op name=matmul shape=%lldx%lldx%lld ns_per_op=%.0f ns_arith=%.0f overhead_ns=%.0f\n",
           (long long)M, (long long)K, (long long)N, taped * 1e9, plain * 1e9,
           (taped - plain) * 1e9);
    tg_tape_free(c.tape);
    tg_tensor_free(c.a);
    tg_tensor_free(c.w);
    free(c.c);
}

int main(void)
{
    int threads = bench_threads();
    if (bench_quick()) {
        batches = 3;
        batch_s = 0.02;
    }
    omp_set_num_threads(threads);
    printf("# bench_ops threads=%d chain=%d (ns per op; overhead = taped - plain loop)\n",
           threads, CHAIN);
    bench_tanh(1, 1, false);
    bench_tanh(50, 128, false);
    bench_tanh(1, 1, true);
    bench_tanh(50, 128, true);
    bench_matmul(50, 193, 128);
    return 0;
}
