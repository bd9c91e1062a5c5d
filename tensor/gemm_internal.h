/* tensor/gemm_internal.h: private glue between the GEMM front end and its kernel files. */
#ifndef TG_TENSOR_GEMM_INTERNAL_H
#define TG_TENSOR_GEMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A 64-byte aligned scratch buffer of at least `bytes` bytes, owned by the calling
 * thread and reused by every later call from it (grow-only, never freed before the
 * thread ends). Returns NULL when it cannot be allocated. */
void *tg_gemm_scratch(size_t bytes);

/* Products with fewer multiply-adds than this run on the calling thread only: a second
 * thread would save less time than the fork and join cost. */
#define TG_GEMM_PAR_MIN_FMAS ((int64_t)96 * 1024)

/* Guard against oversubscription. When other processes keep the cores busy, a thread of a
 * parallel region can wait a whole scheduler time slice for its partner, and a product
 * that takes microseconds takes milliseconds. So the products that could use threads are
 * timed: tg_gemm_threads_ok() says whether the next one may use threads, and
 * tg_gemm_took() reports how long it took (threads: whether it used them). Mostly the
 * last decision holds; now and then a probe runs TG_GEMM_PROBE_RUN products without
 * threads, then as many with them (the first TG_GEMM_PROBE_WARM not timed; after
 * TG_GEMM_PROBE_EARLY timed ones at half the one-thread rate the probe ends), and the
 * faster way is kept for a period long enough that the probe's cost is a small share of
 * it. Threaded products that keep losing against the probe's one-thread rate switch to
 * one thread at once. The state is the calling thread's. tg_threads_pay()
 * (tensor_internal.h) gives the pointwise loops the same decision. Results do not change:
 * they are bit-identical for any thread count. */
#define TG_GEMM_PROBE_RUN 16
#define TG_GEMM_PROBE_WARM 2
#define TG_GEMM_PROBE_EARLY 2
bool tg_gemm_threads_ok(void);
void tg_gemm_took(bool threads, double seconds, double fmas);

/* The guard's second signal, asked when a thread starts and before each probe: how many
 * threads of other processes are runnable now (-1: unknown). While they leave fewer idle
 * CPUs than the team has threads, products stay on one thread and no probe runs, since
 * on such a machine every threaded try waits a scheduler slice. Linux's count by default
 * (/proc); tests put a function of their own here. */
extern int (*tg_gemm_others_runnable)(void);

/* How a blocked driver runs one product; gemm_driver_internal.h describes each mode. */
typedef enum tg_gemm_mode {
    TG_GEMM_MODE_COLUMNS,   /* op(A) small: threads take runs of B panels, A read in place */
    TG_GEMM_MODE_SLICES,    /* deep product: threads share one packed K slice of op(B) at a
                               time, each computing its own share of the rows */
    TG_GEMM_MODE_ROWS,      /* otherwise: threads share a packed column block of op(B),
                               all of K, and take runs of A panels */
} tg_gemm_mode;

/* A driver instantiation's blocking: micro-tile rows and columns, deepest K slice, and
 * bytes per element. */
typedef struct tg_gemm_tiling {
    int64_t mr, nr, kc;
    size_t elem_bytes;
} tg_gemm_tiling;

extern const tg_gemm_tiling tg_sgemm_avx2_tiling, tg_dgemm_avx2_tiling;
extern const tg_gemm_tiling tg_sgemm_portable_tiling, tg_dgemm_portable_tiling;

/* The mode in which the driver with tiling t computes C (M x N) = op(A) (M x K) @ op(B)
 * (K x N) on nth threads (the count it will really use). Depends on nothing else; every
 * mode gives the same bits, so the choice is about speed only (bench/README.md). */
tg_gemm_mode tg_gemm_choose_mode(const tg_gemm_tiling *t, int64_t M, int64_t N, int64_t K,
                                 int nth);

/* The blocked drivers, one per (type, kernel). Preconditions (checked by tg_sgemm /
 * tg_dgemm): M, N, K >= 1, alpha != 0, pointers valid. arows / brows, when not NULL,
 * give row k of A (ta only) / of B (!tb only) in place of A + k*lda / B + k*ldb (see
 * tg_sgemm_rows); bpre, when not NULL, is op(B) packed by tg_sgemm_*_pack (float only),
 * which columns mode reads instead of packing B again (see tg_sgemm_prepacked). Return
 * false only when the pack buffers cannot be allocated (C untouched then). */
bool tg_sgemm_portable(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb,
                        const float *const *arows, const float *const *brows,
                        const float *bpre, float beta, float *C, int64_t ldc);
bool tg_dgemm_portable(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                        const double *A, int64_t lda, const double *B, int64_t ldb,
                        const double *const *arows, const double *const *brows,
                        const double *bpre, double beta, double *C, int64_t ldc);
bool tg_sgemm_avx2(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb,
                    const float *const *arows, const float *const *brows, const float *bpre,
                    float beta, float *C, int64_t ldc);
bool tg_dgemm_avx2(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                    const double *A, int64_t lda, const double *B, int64_t ldb,
                    const double *const *arows, const double *const *brows,
                    const double *bpre, double beta, double *C, int64_t ldc);

/* C = alpha * A @ B + beta * C for M <= 2 (A and B not transposed), B read in place:
 * bit-identical to tg_sgemm_avx2 on the same product (see gemm_avx2.c). */
void tg_sgemm_avx2_smallm(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                           int64_t ldc);

/* The float drivers' packing of op(B) for their bpre argument (GD_PACK_ENTRY in
 * gemm_driver_internal.h): returns the elements it takes; dst NULL only asks. */
int64_t tg_sgemm_avx2_pack(bool tb, int64_t K, int64_t N, const float *B, int64_t ldb,
                            float *dst);
int64_t tg_sgemm_portable_pack(bool tb, int64_t K, int64_t N, const float *B, int64_t ldb,
                                float *dst);

#endif /* TG_TENSOR_GEMM_INTERNAL_H */
