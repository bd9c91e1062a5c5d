/* tensor/tensor.h: dense row-major tensors (float32 | float64), status codes, seeded RNG. */
#ifndef TG_TENSOR_TENSOR_H
#define TG_TENSOR_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type, chosen at run time. All operands of an op share one dtype. */
typedef enum tg_dtype { TG_F32, TG_F64 } tg_dtype;

/* Status codes. Append-only: existing values never change. */
typedef enum tg_status {
    TG_OK = 0,
    TG_ERR_NOMEM,   /* an allocation failed or a size overflowed      */
    TG_ERR_SHAPE,   /* shapes do not fit the operation                */
    TG_ERR_DTYPE,   /* operands of different dtypes                   */
    TG_ERR_NULL,    /* a required pointer was NULL                    */
    TG_ERR_ARG,     /* an argument is out of range                    */
    TG_ERR_IO,      /* reading or writing a file failed               */
    TG_ERR_FORMAT,  /* a file is not in the expected format           */
    TG_ERR_NONFINITE /* a NaN or infinity where a finite value is needed */
} tg_status;

/* A short English description of a status ("shape mismatch", ...). Never NULL. */
const char *tg_status_str(tg_status s);

/* ---- errors of functions that are not ops ----------------------------------
 * An op records its error on its tape (autograd.h). Every other function that returns
 * NULL or a status other than TG_OK also leaves a message for the calling thread saying
 * why ("params_add: name \"w\" is taken"), read with tg_last_error, as errno is read
 * after a failed libc call. A successful call does not clear it.
 */
/* The message of the calling thread's most recent failure ("" when there was none). */
const char *tg_last_error(void);
/* The status of that failure (TG_OK when there was none). */
tg_status   tg_last_status(void);
/* Forgets the calling thread's last failure. */
void        tg_clear_error(void);

#define TG_MAX_DIMS 4

/* flags bits */
#define TG_FLAG_REQUIRES_GRAD 1u  /* gradients flow into this tensor            */
#define TG_FLAG_TAPE          2u  /* owned by a tape: never pass to tg_tensor_free */
#define TG_FLAG_VIEW          4u  /* data borrowed from another tensor          */

typedef struct tg_tensor {
    tg_dtype dtype;
    int      ndim;
    int64_t  shape[TG_MAX_DIMS];   /* row-major, contiguous */
    int64_t  numel;
    void    *data;                 /* numel elements of dtype; callers may write it */
    void    *grad;                 /* same layout, or NULL when no gradient is kept */
    unsigned flags;
} tg_tensor;

/* Size in bytes of one element of dtype (4 or 8). */
size_t tg_dtype_size(tg_dtype dtype);

/* A new zero-filled tensor of ndim (1..TG_MAX_DIMS) dimensions, each >= 1.
   The caller owns it and frees it with tg_tensor_free.
   Returns NULL on a bad dtype, ndim or shape, on size overflow, or out of memory; the
   reason in tg_last_error(). */
tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape);

/* Frees a tensor made by tg_tensor_new (data and grad too). NULL is a no-op;
   a tape-owned tensor is left alone (its tape frees it). */
void tg_tensor_free(tg_tensor *t);

/* Allocates a zeroed gradient buffer (if there is none) and marks t as requiring
   gradients; tg_backward then ADDS into t->grad.
   Returns TG_ERR_NULL for NULL, TG_ERR_ARG for a tape-owned tensor, TG_ERR_NOMEM when
   the buffer cannot be allocated; the reason in tg_last_error(). */
tg_status tg_tensor_requires_grad(tg_tensor *t);

/* Sets every element of t->grad to zero (no-op when t or t->grad is NULL). */
void tg_tensor_zero_grad(tg_tensor *t);

/* Element i (flat, row-major) as a double, whatever the dtype. No bounds check. */
double tg_tensor_get(const tg_tensor *t, int64_t i);
/* Stores v (rounded to the dtype) at flat index i. No bounds check. */
void tg_tensor_set(tg_tensor *t, int64_t i, double v);
/* Gradient element i as a double; 0 when t->grad is NULL. */
double tg_tensor_grad_get(const tg_tensor *t, int64_t i);

/* Copies values (n = numel doubles, row-major) into t, rounding to its dtype.
   Returns TG_ERR_NULL for NULL arguments; the reason in tg_last_error(). */
tg_status tg_tensor_fill_values(tg_tensor *t, const double *values);
/* Sets every element to v. */
void tg_tensor_fill(tg_tensor *t, double v);

/* Copies src's data into dst. Shapes (numel) and dtypes must agree.
   Returns TG_ERR_NULL, TG_ERR_DTYPE or TG_ERR_SHAPE on mismatch; the reason in
   tg_last_error(). */
tg_status tg_tensor_copy(tg_tensor *dst, const tg_tensor *src);

/* A caller-owned deep copy of t's data (not its gradient); NULL for NULL t or when out
   of memory (the reason in tg_last_error()).
   This is how a value leaves a tape (the detach, e.g. for hidden state in TBPTT). */
tg_tensor *tg_tensor_clone(const tg_tensor *t);

/* True when both tensors have the same ndim and shape. */
bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b);

/* Writes "shape" as "(2,3,4)" into buf (size >= 64 is always enough). Returns buf. */
char *tg_shape_str(const tg_tensor *t, char *buf, size_t size);

/* Prints a readable, shape-aware dump: dtype, shape, then the values nested by dimension
   (rows as lines; large tensors are summarised with "..." after edgeitems per dimension).
   name may be NULL. Writes nothing for a NULL stream. */
void tg_tensor_print(FILE *f, const char *name, const tg_tensor *t);

/* ---- random numbers ------------------------------------------------------
 * A small, seeded, fully deterministic generator (xoshiro256** seeded through
 * splitmix64). Its whole state is the struct: copy it to save or restore it.
 */
typedef struct tg_rng { uint64_t s[4]; } tg_rng;

/* Seeds rng from one 64-bit seed; the same seed always gives the same sequence. */
void     tg_rng_seed(tg_rng *rng, uint64_t seed);
/* The next raw 64-bit value. */
uint64_t tg_rng_next(tg_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double   tg_rng_uniform(tg_rng *rng);
/* Standard normal (mean 0, sd 1) by Box-Muller; uses two uniforms per call. */
double   tg_rng_normal(tg_rng *rng);
/* Uniform integer in [0, n) without modulo bias; 0 when n <= 0. */
int64_t  tg_rng_below(tg_rng *rng, int64_t n);

/* Fills t with uniform values in [lo, hi), in row-major order. */
void tg_tensor_fill_uniform(tg_tensor *t, tg_rng *rng, double lo, double hi);
/* Fills t with normal values of the given mean and standard deviation. */
void tg_tensor_fill_normal(tg_tensor *t, tg_rng *rng, double mean, double sd);

/* ---- threads --------------------------------------------------------------
 * Results never depend on the thread count (docs/DESIGN.md, "Determinism").
 */
/* Sets the number of OpenMP threads kernels may use (n >= 1); no-op without OpenMP. */
void tg_set_num_threads(int n);
/* The number of threads kernels will use (1 without OpenMP). */
int  tg_get_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* TG_TENSOR_TENSOR_H */
