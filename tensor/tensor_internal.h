/* tensor/tensor_internal.h: helpers shared by tensor/ and autograd/ (not public). */
#ifndef TG_TENSOR_TENSOR_INTERNAL_H
#define TG_TENSOR_TENSOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* Records the calling thread's last error (tg_last_error) and returns status, so a
   failing function can `return tg_error_set(TG_ERR_ARG, "who: why %d", x);`.
   The message starts with the public function's name without its tg_ prefix. */
tg_status tg_error_set(tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For a public function with an err/errsize buffer (may be NULL/0): copies the calling
   thread's last error into it when st is not TG_OK, else empties it; returns st. */
tg_status tg_error_copy(tg_status st, char *err, size_t errsize);

/* CRC-32 (IEEE 802.3, as zlib's crc32) of n bytes, continuing from crc (start with 0):
   the checksum of checkpoint files, of the corpus a checkpoint was trained on, and of the
   parameter layout MPI ranks compare. */
uint32_t tg_crc32(uint32_t crc, const void *data, size_t n);

/* Prefixes the calling thread's last error with the formatted context and ": " (keeping
   its status), so a caller can say on whose behalf a callee failed: "linear_init: head:
   params_add: name \"head.w\" is taken". Returns the status. */
tg_status tg_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* a*b into *out; true (and *out untouched) when it overflows size_t. */
bool tg_mul_overflows(size_t a, size_t b, size_t *out);

/* Validates dtype/ndim/shape and computes numel and byte size with overflow checks.
   TG_ERR_ARG bad dtype or ndim, TG_ERR_SHAPE a dim < 1, TG_ERR_NOMEM too large. */
tg_status tg_shape_check(tg_dtype dtype, int ndim, const int64_t *shape, int64_t *numel,
                         size_t *bytes);

/* Fills the header fields (dims past ndim are set to 1). */
void tg_tensor_set_shape(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                         int64_t numel);

/* Runs the statements once with T = float or double, matching dtype: kernels are
   written once. <tgmath.h> picks expf/exp etc. from T. */
#define TG_DISPATCH(dtype, ...)                                                   \
    do {                                                                          \
        if ((dtype) == TG_F64) {                                                  \
            typedef double T;                                                     \
            __VA_ARGS__                                                           \
        } else {                                                                  \
            typedef float T;                                                      \
            __VA_ARGS__                                                           \
        }                                                                         \
    } while (0)

/* A function compiled twice, for AVX2+FMA and for the baseline, picked once at load time by
   the CPU (gcc's ifunc). Both give the same bits unless the code calls fma() itself: ISO C
   mode (-std=c11) contracts no a*b+c into an FMA. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TG_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define TG_CLONES
#endif

/* Work (elements, roughly flops) below which a kernel stays on one thread: below it a
   parallel region costs more than the work it splits (bench/README.md has the figures).
   A 50x128 sigmoid forward is 51200 work and splits; its backward (25600) stays. */
#ifndef TG_PAR_THRESHOLD
#define TG_PAR_THRESHOLD (1 << 15)
#endif

/* False while the GEMM's oversubscription guard (tensor/gemm_internal.h) keeps products
   on one thread (other processes hold the cores, and a region would wait for its team),
   when only one thread is allowed, and inside a parallel region: a team of one still
   costs a region's set-up. */
bool tg_threads_pay(void);

/* for (int64_t i = 0; i < n; i++) { body }, split over OpenMP threads only when work
   exceeds the threshold and threads pay. The test comes before OpenMP is entered: a
   parallel region whose if clause is false still costs libgomp a team set-up (malloc,
   futex). Use it only for loops whose iterations write disjoint memory. */
#define TG_PRAGMA(x) _Pragma(#x)
#define TG_FOR(work, i, n, ...)                                                   \
    do {                                                                          \
        if ((work) > TG_PAR_THRESHOLD && tg_threads_pay()) {                     \
            TG_PRAGMA(omp parallel for schedule(static))                          \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                     \
        } else {                                                                  \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                     \
        }                                                                         \
    } while (0)

/* TG_FOR over chunks of TG_CHUNK elements: body runs once per chunk [lo, lo + len) of the
   n elements, the chunks split over threads when work pays. Chunk bounds depend on n
   alone, so a per-chunk result is the same for any thread count. */
#define TG_CHUNK 4096
#define TG_FOR_CHUNKS(work, n, lo, len, ...)                                      \
    TG_FOR((work), chunk_, ((n) + TG_CHUNK - 1) / TG_CHUNK,                      \
        int64_t lo = chunk_ * TG_CHUNK;                                           \
        int64_t len = (n) - lo < TG_CHUNK ? (n) - lo : TG_CHUNK;                  \
        __VA_ARGS__)

#endif /* TG_TENSOR_TENSOR_INTERNAL_H */
