/* bench/bench_gemm.c: GFLOP/s of tg_sgemm on the shapes training runs, next to OpenBLAS. */
/*
 * Prints one key=value line per shape:
 *   gemm M= K= N= ta= tb= gflops= [openblas_gflops= ratio= maxrel=]
 * gflops counts 2*M*N*K flops per call and is the best (over several batches) of the
 * batch-average rate, at TG_BENCH_THREADS threads (default 2) for both libraries.
 * OpenBLAS is not linked: when libopenblas.so.0 can be dlopen'ed at run time (Debian's
 * libopenblas0), its cblas_sgemm is timed in the same run on the same data, and
 * ratio = gflops / openblas_gflops. TG_BENCH_NO_OPENBLAS=1 skips it, TG_BENCH_QUICK=1
 * shortens the runs, TG_BENCH_SHAPES=1024 runs only the shapes whose M is that number,
 * TG_BENCH_SHAPE=M,K,N,ta,tb runs that one shape instead, TG_BENCH_COLD=1 rotates over
 * copies of A and B (more than 16 MiB in all) so that every call starts from operands out
 * of cache, as the weights of a training step are,
 * TG_BENCH_ROUNDS=n repeats each measurement n times and keeps the best, for both (3, or 1
 * with TG_BENCH_QUICK=1: single rounds put a shape 5% off its ratio now and then),
 * TG_BENCH_CPUTIME=1 with TG_BENCH_THREADS=1 times the thread's CPU time instead of the
 * wall clock (for comparing kernels on a machine that other work keeps busy).
 */
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "bench/bench_util.h"
#include "tensor/gemm.h"

typedef struct shape {
    int64_t M, K, N;
    int ta, tb;
    const char *what;
} shape;

/* The products one training step of the char-LM runs (batch 50, seq 50, vocab 65):
 * per layer and time step x@W (M=50, K=H+I, N=H for each gate) and its backward dX =
 * dY@W^T; the gate's dW = X^T@dY once over all 50 steps (2500 rows: backward queues the
 * weight gradients and runs each W's as one product); the output head over all B*T =
 * 2500 rows, forward and backward. The first layer's one-hot input is gathered, not
 * multiplied (K = H instead of H+65, the dW over H rows); at hidden 128 the four gates of
 * a layer run as one product of 4H columns (autograd/ops_groups.c), at hidden 512 one by
 * one. Generation runs the same products with one row. */
static const shape shapes[] = {
    {50, 128, 512, 0, 0, "h128 layer1 forward, 4 gates"},
    {50, 128, 128, 0, 1, "h128 layer1 backward dX"},
    {128, 2500, 128, 1, 0, "h128 layer1 backward dW, 50 steps"},
    {50, 256, 512, 0, 0, "h128 layer2 forward, 4 gates"},
    {50, 128, 256, 0, 1, "h128 layer2 backward dX"},
    {256, 2500, 128, 1, 0, "h128 layer2 backward dW, 50 steps"},
    {2500, 128, 65, 0, 0, "h128 head forward"},
    {2500, 65, 128, 0, 1, "h128 head backward dX"},
    {128, 2500, 65, 1, 0, "h128 head backward dW"},
    {50, 512, 512, 0, 0, "h512 layer1 forward"},
    {50, 512, 512, 0, 1, "h512 layer1 backward dX"},
    {512, 2500, 512, 1, 0, "h512 layer1 backward dW, 50 steps"},
    {50, 1024, 512, 0, 0, "h512 layer2 forward"},
    {50, 512, 1024, 0, 1, "h512 layer2 backward dX"},
    {1024, 2500, 512, 1, 0, "h512 layer2 backward dW, 50 steps"},
    {2500, 512, 65, 0, 0, "h512 head forward"},
    {2500, 65, 512, 0, 1, "h512 head backward dX"},
    {512, 2500, 65, 1, 0, "h512 head backward dW"},
    /* generation (batch 1, no tape to pre-pack the weights) */
    {1, 128, 128, 0, 0, "h128 layer1 generation"},
    {1, 256, 128, 0, 0, "h128 layer2 generation"},
    {1, 128, 65, 0, 0, "h128 head generation"},
    {1, 512, 512, 0, 0, "h512 layer1 generation"},
    {1, 1024, 512, 0, 0, "h512 layer2 generation"},
    {1, 512, 65, 0, 0, "h512 head generation"},
    {1024, 1024, 1024, 0, 0, "square"},
    {1024, 1024, 1024, 1, 0, "square A^T"},
    {1024, 1024, 1024, 0, 1, "square B^T"},
};

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);

static cblas_sgemm_fn ob_sgemm;
static int copies = 1;   /* TG_BENCH_COLD: rotate over this many copies of A and B */

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    return bench_seconds(bench_clock);
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void load_openblas(int threads)
{
    const char *skip = getenv("TG_BENCH_NO_OPENBLAS");
    if (skip && *skip && strcmp(skip, "0") != 0)
        return;
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("# openblas not found (%s): timing tapegrad only\n", dlerror());
        return;
    }
    void *sym = dlsym(h, "cblas_sgemm");
    if (!sym)
        return;
    memcpy(&ob_sgemm, &sym, sizeof ob_sgemm);   /* object -> function pointer, POSIX-style */
    void *st = dlsym(h, "openblas_set_num_threads");
    if (st) {
        set_threads_fn f;
        memcpy(&f, &st, sizeof f);
        f(threads);
    }
    void *cn = dlsym(h, "openblas_get_corename");
    if (cn) {
        char *(*g)(void);
        memcpy(&g, &cn, sizeof g);
        printf("# openblas core=%s threads=%d\n", g(), threads);
    }
}

/* One call of the chosen implementation: C = A op B (alpha 1, beta 0). */
static void call(int lib, const shape *s, const float *A, const float *B, float *C)
{
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    if (copies > 1) {   /* the next copy: operands that are not in cache, as in training */
        static int next;
        next = (next + 1) % copies;
        A += (size_t)next * (size_t)(s->M * s->K);
        B += (size_t)next * (size_t)(s->K * s->N);
    }
    if (lib == 0) {
        tg_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
    } else {
        /* CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 */
        ob_sgemm(101, s->ta ? 112 : 111, s->tb ? 112 : 111, (int)s->M, (int)s->N, (int)s->K,
                 1.0f, A, (int)lda, B, (int)ldb, 0.0f, C, (int)s->N);
    }
}

/* Best batch-average GFLOP/s over `batches` batches of about `batch_s` seconds each. */
static double time_lib(int lib, const shape *s, const float *A, const float *B, float *C,
                       int batches, double batch_s)
{
    double flops = 2.0 * (double)s->M * (double)s->N * (double)s->K;
    /* Warm up and size the batch. */
    double t0 = now();
    int n = 0;
    do {
        call(lib, s, A, B, C);
        n++;
    } while (now() - t0 < 0.02);
    int per = (int)(batch_s / ((now() - t0) / n)) + 1;
    double best = 0;
    for (int b = 0; b < batches; b++) {
        double t = now();
        for (int i = 0; i < per; i++)
            call(lib, s, A, B, C);
        double rate = flops * per / (now() - t) * 1e-9;
        if (rate > best)
            best = rate;
    }
    return best;
}

/* bytes rounded up to whole 64-byte lines, on a line's boundary (free() frees it) */
static void *lines_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

int main(void)
{
    int threads = bench_threads();
    bool quick = bench_quick();
    int batches = quick ? 3 : 7;
    double batch_s = quick ? 0.03 : 0.08;
    const char *only = getenv("TG_BENCH_SHAPES");
    const char *rs = getenv("TG_BENCH_ROUNDS");
    int rounds = rs && atoi(rs) > 0 ? atoi(rs) : quick ? 1 : 3;
    const char *ct = getenv("TG_BENCH_CPUTIME");
    if (threads == 1 && ct && *ct && strcmp(ct, "0") != 0)
        bench_clock = CLOCK_THREAD_CPUTIME_ID;   /* on a busy machine: CPU time, 1 thread */
    omp_set_num_threads(threads);
    printf("# bench_gemm backend=%s threads=%d (2*M*N*K flops per call)\n", tg_gemm_backend(),
           threads);
    load_openblas(threads);

    shape custom = {0, 0, 0, 0, 0, "custom"};
    const char *cs = getenv("TG_BENCH_SHAPE");
    if (cs && sscanf(cs, "%lld,%lld,%lld,%d,%d", (long long *)&custom.M, (long long *)&custom.K,
                     (long long *)&custom.N, &custom.ta, &custom.tb) != 5) {
        fprintf(stderr, "bench_gemm: TG_BENCH_SHAPE is M,K,N,ta,tb\n");
        return 1;
    }
    size_t nshapes = cs ? 1 : sizeof shapes / sizeof shapes[0];
    for (size_t si = 0; si < nshapes; si++) {
        const shape *s = cs ? &custom : &shapes[si];
        if (only && atoll(only) != s->M)
            continue;
        size_t na = (size_t)(s->M * s->K), nb = (size_t)(s->K * s->N), nc = (size_t)(s->M * s->N);
        copies = 1;
        const char *cold = getenv("TG_BENCH_COLD");
        if (cold && *cold && strcmp(cold, "0") != 0) {   /* > 16 MiB of operands in all */
            copies = (int)((16u << 20) / ((na + nb) * sizeof(float))) + 1;
            copies = copies > 64 ? 64 : copies;
        }
        /* on cache lines, as tapegrad's tensors are: malloc's 16-byte offset (always, from
           128 KB) made one-row products of the same shape a third slower or not, by size */
        float *A = lines_alloc(na * (size_t)copies * sizeof *A);
        float *B = lines_alloc(nb * (size_t)copies * sizeof *B);
        float *C = lines_alloc(nc * sizeof *C), *C2 = lines_alloc(nc * sizeof *C2);
        if (!A || !B || !C || !C2) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        unsigned r = 12345u + (unsigned)si;
        for (size_t i = 0; i < na * (size_t)copies; i++) {
            r = r * 1664525u + 1013904223u;
            A[i] = (float)((r >> 8) * (1.0 / 16777216.0) - 0.5);
        }
        for (size_t i = 0; i < nb * (size_t)copies; i++) {
            r = r * 1664525u + 1013904223u;
            B[i] = (float)((r >> 8) * (1.0 / 16777216.0) - 0.5);
        }
        double own = 0, ob = 0;
        for (int round = 0; round < rounds; round++) {
            /* OpenBLAS's idle workers keep spinning for ~0.1 s after a call; running ours
             * while they spin would charge their spinning to us. */
            if (ob_sgemm)
                pause_ms(300);
            double g = time_lib(0, s, A, B, C, batches, batch_s);
            own = g > own ? g : own;
            if (ob_sgemm) {
                pause_ms(30);   /* let our idle OpenMP threads go to sleep */
                g = time_lib(1, s, A, B, C2, batches, batch_s);
                ob = g > ob ? g : ob;
            }
        }
        printf("gemm M=%lld K=%lld N=%lld ta=%d tb=%d gflops=%.1f", (long long)s->M,
               (long long)s->K, (long long)s->N, s->ta, s->tb, own);
        if (ob_sgemm) {
            int saved = copies;   /* compare one product of the first copy */
            copies = 1;
            call(0, s, A, B, C);
            call(1, s, A, B, C2);
            copies = saved;
            double maxrel = 0;
            for (size_t i = 0; i < nc; i++) {
                double d = fabs((double)C[i] - (double)C2[i]) / (fabs((double)C2[i]) + 1e-3);
                if (d > maxrel)
                    maxrel = d;
            }
            printf(" openblas_gflops=%.1f ratio=%.2f maxrel=%.1e", ob, own / ob, maxrel);
        }
        printf("  # %s\n", s->what);
        fflush(stdout);
        free(A);
        free(B);
        free(C);
        free(C2);
    }
    return 0;
}
