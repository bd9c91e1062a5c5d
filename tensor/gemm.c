/* tensor/gemm.c: tg_sgemm/tg_dgemm front end, run-time kernel choice, portable kernels. */
#include "tensor/gemm.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "tensor/gemm_internal.h"
#include "tensor/tensor_internal.h"

#ifdef TG_USE_OPENBLAS
#include <cblas.h>
#endif

/* ---- per-thread scratch ------------------------------------------------------------ */

/* Grow-only; lives until the thread ends (one buffer per calling thread, so concurrent
 * callers never share it). */
static _Thread_local struct {
    void *p;
    size_t cap;
} scratch;

void *tg_gemm_scratch(size_t bytes)
{
    if (bytes <= scratch.cap)
        return scratch.p;
    size_t cap = bytes + bytes / 4 + 4096;
    cap = (cap + 63) / 64 * 64;
    void *p = aligned_alloc(64, cap);
    if (!p)
        return NULL;
    free(scratch.p);
    scratch.p = p;
    scratch.cap = cap;
    return p;
}

/* ---- oversubscription guard (see gemm_internal.h) ----------------------------------- */

/* Per calling thread: whether products use threads (`threads`) for `left` more seconds of
 * product time, then a probe: TG_GEMM_PROBE_RUN products on one thread, then as many with
 * threads, whose FLOP rates decide the next period. The first TG_GEMM_PROBE_WARM threaded
 * ones are not timed: a team that slept through the one-thread run, or a virtual CPU the
 * host took away while it idled, can take milliseconds to wake, a cost steady use does
 * not pay.
 *
 * Probing costs: the losing way runs for a while. So a period is long enough that what
 * the last probe lost is at most PROBE_SHARE of it, and a period that confirms the last
 * decision is twice as long as the last one (PERIOD_MIN to PERIOD_MAX).
 *
 * While threads are used, each product is weighed against twice its time on one thread at
 * the last probe's rate (the products' rates vary with their shapes): `lost` sums the
 * seconds threads lost against that (their gains count too, down to -LOST_MAX, so that one slow
 * wake-up on a quiet machine whose threads have been winning is absorbed), and when it
 * exceeds LOST_MAX the cores are taken: one thread at once, for PERIOD_MIN, then a probe
 * says for how long. A probe alone can be fooled: a worker that slept through the
 * one-thread run is scheduled promptly for a while when it wakes, even beside a busy
 * process. Timing alone cannot tell a busy machine from a cold one either: a quiet VM's
 * first regions take milliseconds too. So the kernel's count of runnable threads is asked
 * first (cpus_taken): while other processes hold the CPUs no probe runs at all. */
#define PERIOD_MIN 5e-3        /* seconds of product time */
#define PERIOD_MAX 1.0
#define PERIOD_COST_MAX 60.0
#define PROBE_SHARE 0.01
#define LOST_MAX 5e-3
#define IDLE_ONE_S_PER_FMA (1 / 4e9)   /* no idle core runs slower than 4e9 FMA/s */

static _Thread_local struct {
    bool probing, threads, started;
    int probe_i;              /* products of the probe so far */
    double left, period;      /* seconds of product time left in this period, its length */
    double one_s_per_fma;     /* one thread's seconds per multiply-add, at the last probe */
    double lost;              /* threaded period: seconds lost against 2x one thread */
    double fmas[2], secs[2];  /* probe totals: [0] one thread, [1] threads (timed ones) */
    double warm_fmas, warm_secs;   /* the probe's untimed threaded products */
} guard;

/* ---- the kernel's count of runnable threads (Linux /proc) ---- */

/* This process's runnable threads: those whose /proc/self/task/<tid>/stat state is R
 * (the caller itself, and OpenMP workers still spinning after a region); -1 when /proc
 * cannot say, or the process has more than OWN_THREADS_MAX threads (a read costs ~5 us
 * a thread, and the timing alone will do). */
#define OWN_THREADS_MAX 256
static int own_runnable(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    int running = 0, threads = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        if (++threads > OWN_THREADS_MAX) {
            running = -1;
            break;
        }
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;   /* the thread ended meanwhile */
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = '\0';
        const char *close = strrchr(line, ')');   /* "tid (name) S ..." */
        running += close && close[1] == ' ' && close[2] == 'R';
    }
    closedir(dir);
    return running;
}

/* Other processes' runnable threads right now: the kernel's count for the whole system
 * (the fourth field of /proc/loadavg, "runnable/total") less this process's own; -1
 * where /proc cannot say. Our own are counted first: a worker that stops spinning
 * between the two reads then makes the answer too small, never too large. */
static int others_runnable_proc(void)
{
    const int own = own_runnable();
    FILE *f = own >= 0 ? fopen("/proc/loadavg", "r") : NULL;
    if (!f)
        return -1;
    int all = -1;
    if (fscanf(f, "%*f %*f %*f %d/", &all) != 1)
        all = -1;
    fclose(f);
    return all < 0 ? -1 : all > own ? all - own : 0;
}

int (*tg_gemm_others_runnable)(void) = others_runnable_proc;

/* Whether other processes leave this thread's team fewer idle CPUs than it has threads
 * (a team of all the CPUs needs them all idle); false when the count is unknown. */
static bool cpus_taken(void)
{
    const int others = tg_gemm_others_runnable();
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    return others > 0 && online > 0 && others > online - omp_get_max_threads();
}

static void guard_start_probe(void)
{
    guard.probing = true;
    guard.probe_i = 0;
    guard.fmas[0] = guard.fmas[1] = guard.secs[0] = guard.secs[1] = 0;
    guard.warm_fmas = guard.warm_secs = 0;
}

/* Ends any probe or period and uses threads or not for the next period, whose length
 * makes `cost` (seconds the last probe or switch lost) a small share of it. */
static void guard_decide(bool use_threads, double cost)
{
    const double base = use_threads != guard.threads ? PERIOD_MIN
                        : 2 * guard.period < PERIOD_MAX ? 2 * guard.period : PERIOD_MAX;
    const double by_cost = cost / PROBE_SHARE < PERIOD_COST_MAX ? cost / PROBE_SHARE
                                                                 : PERIOD_COST_MAX;
    guard.period = base > by_cost ? base : by_cost;
    guard.threads = use_threads;
    guard.left = guard.period;
    guard.lost = 0;
    guard.probing = false;
}

/* The calling thread's first use: threads unless other processes hold the CPUs, and the
 * first probe soon either way. */
static void guard_begin(void)
{
    guard.started = true;
    guard.threads = !cpus_taken();
    guard.period = guard.left = PERIOD_MIN / 4;
    guard.one_s_per_fma = IDLE_ONE_S_PER_FMA;
}

bool tg_threads_pay(void)
{
    if (omp_in_parallel() || omp_get_max_threads() < 2)
        return false;
    if (!guard.started)
        guard_begin();
    return guard.threads;
}

bool tg_gemm_threads_ok(void)
{
    if (!guard.started)
        guard_begin();
    if (!guard.probing && guard.left < 0) {
        if (cpus_taken())   /* no threaded try while others hold the CPUs */
            guard_decide(false, 0);
        else
            guard_start_probe();
    }
    return guard.probing ? guard.probe_i >= TG_GEMM_PROBE_RUN : guard.threads;
}

/* The end of a probe: the faster way for the next period; the cost is the time the slower
 * way took beyond what the faster would have, wake-ups included. */
static void guard_end_probe(void)
{
    const double one_per_fma = guard.secs[0] / guard.fmas[0];
    const double par_per_fma = guard.secs[1] / guard.fmas[1];
    guard.one_s_per_fma = one_per_fma;
    const bool use_threads = par_per_fma <= one_per_fma;
    const double cost = use_threads
        ? guard.secs[0] - guard.fmas[0] * par_per_fma
        : guard.secs[1] + guard.warm_secs - (guard.fmas[1] + guard.warm_fmas) * one_per_fma;
    guard_decide(use_threads, cost > 0 ? cost : 0);
}

void tg_gemm_took(bool threads, double seconds, double fmas)
{
    if (!guard.probing) {
        guard.left -= seconds;
        if (threads) {
            guard.lost += seconds - 2 * fmas * guard.one_s_per_fma;
            if (guard.lost < -LOST_MAX)
                guard.lost = -LOST_MAX;
            else if (guard.lost > LOST_MAX)
                guard_decide(false, 0);
        }
        return;
    }
    /* threaded products of the probe so far, the warm-up ones included */
    const int threaded = ++guard.probe_i - TG_GEMM_PROBE_RUN;
    if (threaded > 0 && threaded <= TG_GEMM_PROBE_WARM) {   /* waking up: not timed */
        guard.warm_fmas += fmas;
        guard.warm_secs += seconds;
        return;
    }
    guard.fmas[threads] += fmas;
    guard.secs[threads] += seconds;
    if (threaded <= 0)
        return;
    /* a hopeless threaded run ends early, since on a busy machine each product can take a
     * scheduler time slice */
    const bool hopeless = 2 * guard.fmas[1] * guard.secs[0] < guard.fmas[0] * guard.secs[1];
    if (guard.probe_i == 2 * TG_GEMM_PROBE_RUN ||
        (threaded - TG_GEMM_PROBE_WARM >= TG_GEMM_PROBE_EARLY && hopeless))
        guard_end_probe();
}

/* ---- the blocked driver's mode (see gemm_internal.h) -------------------------------- */

/* Columns mode reads op(A) in place from every thread: at most half a core's L2 of it. */
#define COLUMNS_A_MAX ((size_t)256 << 10)
/* How much worse splitting the columns may balance the threads than splitting the rows:
 * columns mode needs no shared buffer and no barrier, which pays for a little. */
#define COLUMNS_BALANCE_SLACK 0.02
/* Slices mode shares a packed K slice of op(B): at most what stays in L3 beside op(A). */
#define SLICE_B_MAX ((size_t)4 << 20)

/* Share of the work the busiest of nth threads does when n equal parts are split. */
static double balance(int64_t n, int nth)
{
    int64_t most = (n + nth - 1) / nth;
    return (double)n / (double)(most * nth);
}

tg_gemm_mode tg_gemm_choose_mode(const tg_gemm_tiling *t, int64_t M, int64_t N, int64_t K,
                                 int nth)
{
    /* K slices of (nearly) equal depth <= t->kc, as the driver cuts them */
    const int64_t slices = (K + t->kc - 1) / t->kc, kc = (K + slices - 1) / slices;
    const int64_t a_panels = (M + t->mr - 1) / t->mr, b_panels = (N + t->nr - 1) / t->nr;
    /* columns mode when op(A) stays in L2 and splitting the columns balances about as
     * well as splitting the rows */
    if ((size_t)M * (size_t)K * t->elem_bytes <= COLUMNS_A_MAX &&
        balance(b_panels, nth) + COLUMNS_BALANCE_SLACK >= balance(a_panels, nth))
        return TG_GEMM_MODE_COLUMNS;
    /* slices mode for a product deeper than one K slice, unless a slice of op(B) is huge */
    if (slices >= 2 &&
        (size_t)kc * (size_t)b_panels * (size_t)t->nr * t->elem_bytes <= SLICE_B_MAX)
        return TG_GEMM_MODE_SLICES;
    return TG_GEMM_MODE_ROWS;
}

/* ---- portable micro-kernels (plain C; used without AVX2+FMA, and as the reference) ---- */

#define TG_PORTABLE_KERNEL(NAME, T, MR, NR)                                               \
    static inline void NAME(int64_t kc, const T *a, int64_t rs, int64_t cs,               \
                            const T *restrict b, int64_t bs, T *restrict c, int64_t ldc,  \
                            T alpha, T beta, bool overwrite)                               \
    {                                                                                      \
        T acc[MR][NR];                                                                     \
        for (int i = 0; i < MR; i++)                                                       \
            for (int j = 0; j < NR; j++)                                                   \
                acc[i][j] = 0;                                                             \
        for (int64_t k = 0; k < kc; k++) {                                                 \
            for (int i = 0; i < MR; i++) {                                                 \
                T ai = a[i * rs + k * cs];                                                 \
                for (int j = 0; j < NR; j++)                                               \
                    acc[i][j] += ai * b[k * bs + j];                                       \
            }                                                                              \
        }                                                                                  \
        for (int i = 0; i < MR; i++) {                                                     \
            T *cr = c + i * ldc;                                                           \
            if (overwrite) {                                                               \
                for (int j = 0; j < NR; j++)                                               \
                    cr[j] = alpha * acc[i][j];                                             \
            } else {                                                                       \
                for (int j = 0; j < NR; j++)                                               \
                    cr[j] = alpha * acc[i][j] + beta * cr[j];                              \
            }                                                                              \
        }                                                                                  \
    }

TG_PORTABLE_KERNEL(sgemm_kernel_4x8, float, 4, 8)
TG_PORTABLE_KERNEL(dgemm_kernel_4x4, double, 4, 4)

#define GD_T float
#define GD_ENTRY tg_sgemm_portable
#define GD_TILING tg_sgemm_portable_tiling
#define GD_P(x) sp_##x
#define GD_MR 4
#define GD_NR 8
#define GD_MC 128
#define GD_KC 256
#define GD_KERNEL sgemm_kernel_4x8
#define GD_PACK_ENTRY tg_sgemm_portable_pack
#include "tensor/gemm_driver_internal.h"

#define GD_T double
#define GD_ENTRY tg_dgemm_portable
#define GD_TILING tg_dgemm_portable_tiling
#define GD_P(x) dp_##x
#define GD_MR 4
#define GD_NR 4
#define GD_MC 96
#define GD_KC 256
#define GD_KERNEL dgemm_kernel_4x4
#include "tensor/gemm_driver_internal.h"

/* ---- dispatch ---------------------------------------------------------------------- */

#ifndef TG_USE_OPENBLAS
static bool have_avx2_fma(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();   /* idempotent; needed only if called before constructors ran */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}
#endif

int64_t tg_sgemm_column_unit(void)
{
#ifdef TG_USE_OPENBLAS
    return 0;
#else
    return have_avx2_fma() ? tg_sgemm_avx2_tiling.nr : tg_sgemm_portable_tiling.nr;
#endif
}

const char *tg_gemm_backend(void)
{
#ifdef TG_USE_OPENBLAS
    return "openblas";
#else
    return have_avx2_fma() ? "avx2-fma" : "portable";
#endif
}

/* C = beta*C over an M x N block (beta == 0 writes zeros without reading C). */
#define TG_SCALE_C(T, M, N, beta, C, ldc)                                                 \
    do {                                                                                   \
        for (int64_t i_ = 0; i_ < (M); i_++) {                                             \
            T *r_ = (C) + i_ * (ldc);                                                      \
            if ((beta) == 0) {                                                             \
                for (int64_t j_ = 0; j_ < (N); j_++)                                       \
                    r_[j_] = 0;                                                            \
            } else if ((beta) != 1) {                                                      \
                for (int64_t j_ = 0; j_ < (N); j_++)                                       \
                    r_[j_] *= (beta);                                                      \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Last resort when the pack buffers cannot be allocated: unblocked, no extra memory. */
#define TG_NAIVE_GEMM(T, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)            \
    do {                                                                                   \
        for (int64_t i_ = 0; i_ < (M); i_++) {                                             \
            for (int64_t j_ = 0; j_ < (N); j_++) {                                         \
                T s_ = 0;                                                                  \
                for (int64_t k_ = 0; k_ < (K); k_++) {                                     \
                    T a_ = (ta) ? (A)[k_ * (lda) + i_] : (A)[i_ * (lda) + k_];             \
                    T b_ = (tb) ? (B)[j_ * (ldb) + k_] : (B)[k_ * (ldb) + j_];             \
                    s_ += a_ * b_;                                                         \
                }                                                                          \
                T *c_ = (C) + i_ * (ldc) + j_;                                             \
                *c_ = (beta) == 0 ? (alpha) * s_ : (alpha) * s_ + (beta) * *c_;            \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* tg_sgemm, reading op(B) from Bp (packed by tg_sgemm_pack) when it is not NULL. */
static void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, const float *Bp,
                  float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) {
        TG_SCALE_C(float, M, N, beta, C, ldc);
        return;
    }
#ifdef TG_USE_OPENBLAS
    (void)Bp;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K,
                alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
#else
    if (M <= 2 && !trans_a && !trans_b && have_avx2_fma()) {   /* no packing pays */
        tg_sgemm_avx2_smallm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    bool ok = have_avx2_fma()
                  ? tg_sgemm_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, NULL, NULL,
                                   Bp, beta, C, ldc)
                  : tg_sgemm_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, NULL,
                                       NULL, Bp, beta, C, ldc);
    if (!ok)
        TG_NAIVE_GEMM(float, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void tg_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
              float beta, float *C, int64_t ldc)
{
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc);
}

void tg_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
              double beta, double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) {
        TG_SCALE_C(double, M, N, beta, C, ldc);
        return;
    }
#ifdef TG_USE_OPENBLAS
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K,
                alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
#else
    bool ok = have_avx2_fma()
                  ? tg_dgemm_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, NULL, NULL,
                                   NULL, beta, C, ldc)
                  : tg_dgemm_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, NULL,
                                       NULL, NULL, beta, C, ldc);
    if (!ok)
        TG_NAIVE_GEMM(double, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* ---- products over row tables ----------------------------------------------------------
 * C = alpha * sum_k outer(arows[k], brows[k]) + beta * C: A^T @ B where row k of A (length
 * M) and row k of B (length N) live anywhere. With OpenBLAS the rows are first copied
 * into one contiguous pair of matrices (per-thread scratch).
 */
#ifdef TG_USE_OPENBLAS
#define TG_ROWS_BACKEND(T, pre, M, N, K, alpha, arows, brows, beta, C, ldc)                 \
    do {                                                                                   \
        T *a_ = tg_gemm_scratch((size_t)(K) * (size_t)((M) + (N)) * sizeof(T));           \
        if (a_) {                                                                          \
            T *b_ = a_ + (K) * (M);                                                        \
            for (int64_t k_ = 0; k_ < (K); k_++) {                                         \
                memcpy(a_ + k_ * (M), (arows)[k_], (size_t)(M) * sizeof(T));               \
                memcpy(b_ + k_ * (N), (brows)[k_], (size_t)(N) * sizeof(T));               \
            }                                                                              \
            cblas_##pre##gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)(M),       \
                              (blasint)(N), (blasint)(K), alpha, a_, (blasint)(M), b_,     \
                              (blasint)(N), beta, C, (blasint)(ldc));                      \
            ok_ = true;                                                                    \
        }                                                                                  \
    } while (0)
#else
#define TG_ROWS_BACKEND(T, pre, M, N, K, alpha, arows, brows, beta, C, ldc)                 \
    ok_ = have_avx2_fma()                                                                  \
              ? tg_##pre##gemm_avx2(true, false, M, N, K, alpha, arows[0], 0, brows[0], 0, \
                                     arows, brows, NULL, beta, C, ldc)                     \
              : tg_##pre##gemm_portable(true, false, M, N, K, alpha, arows[0], 0,         \
                                         brows[0], 0, arows, brows, NULL, beta, C, ldc)
#endif

#define TG_GEMM_ROWS(T, pre)                                                               \
    void tg_##pre##gemm_rows(int64_t M, int64_t N, int64_t K, T alpha,                     \
                             const T *const *arows, const T *const *brows, T beta, T *C,   \
                             int64_t ldc)                                                  \
    {                                                                                      \
        if (M <= 0 || N <= 0)                                                              \
            return;                                                                        \
        if (K <= 0 || alpha == 0) {                                                        \
            TG_SCALE_C(T, M, N, beta, C, ldc);                                             \
            return;                                                                        \
        }                                                                                  \
        bool ok_ = false;                                                                  \
        TG_ROWS_BACKEND(T, pre, M, N, K, alpha, arows, brows, beta, C, ldc);               \
        if (ok_)                                                                           \
            return;                                                                        \
        for (int64_t i = 0; i < M; i++) {            /* no memory for the pack buffers */  \
            for (int64_t j = 0; j < N; j++) {                                              \
                T s = 0;                                                                   \
                for (int64_t k = 0; k < K; k++)                                            \
                    s += arows[k][i] * brows[k][j];                                        \
                T *c = C + i * ldc + j;                                                    \
                *c = beta == 0 ? alpha * s : alpha * s + beta * *c;                        \
            }                                                                              \
        }                                                                                  \
    }
TG_GEMM_ROWS(float, s)
TG_GEMM_ROWS(double, d)

/* ---- products with a packed copy of op(B) ----------------------------------------------
 * A weight used by many products (a recurrent gate at every time step) is packed once. */
int64_t tg_sgemm_packed_size(int64_t K, int64_t N)
{
#ifdef TG_USE_OPENBLAS
    (void)K, (void)N;
    return 0;
#else
    if (K <= 0 || N <= 0)
        return 0;
    return have_avx2_fma() ? tg_sgemm_avx2_pack(false, K, N, NULL, 0, NULL)
                           : tg_sgemm_portable_pack(false, K, N, NULL, 0, NULL);
#endif
}

void tg_sgemm_pack(bool trans_b, int64_t K, int64_t N, const float *B, int64_t ldb,
                   float *dst)
{
#ifdef TG_USE_OPENBLAS
    (void)trans_b, (void)K, (void)N, (void)B, (void)ldb, (void)dst;
#else
    if (K <= 0 || N <= 0)
        return;
    if (have_avx2_fma())
        tg_sgemm_avx2_pack(trans_b, K, N, B, ldb, dst);
    else
        tg_sgemm_portable_pack(trans_b, K, N, B, ldb, dst);
#endif
}

void tg_sgemm_prepacked(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb,
                        const float *Bp, float beta, float *C, int64_t ldc)
{
    sgemm(false, trans_b, M, N, K, alpha, A, lda, B, ldb, Bp, beta, C, ldc);
}
