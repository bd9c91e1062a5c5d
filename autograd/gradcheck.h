/* autograd/gradcheck.h: numerical gradient checking (central differences in float64). */
#ifndef TG_AUTOGRAD_GRADCHECK_H
#define TG_AUTOGRAD_GRADCHECK_H

#include <stdint.h>

#include "autograd/autograd.h"
#include "autograd/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The function under test: records a computation on tape that reads the checked
   tensors and returns its one-element loss (or NULL on error). It is called many times;
   it must compute the same function each time (reseed any randomness from user). */
typedef tg_tensor *(*tg_loss_fn)(tg_tape *tape, void *user);

/* The rule. Each element's gradient is compared with the central difference
       numeric = (f(x + eps) - f(x - eps)) / (2 eps)
   and passes when
       |analytic - numeric| <= atol + rtol * |numeric|,
   PyTorch's torch.autograd.gradcheck rule, with its defaults eps 1e-6, atol 1e-5,
   rtol 1e-3. The difference's truncation error falls as eps^2 and its rounding error
   (about 1e-16 |f| / eps) rises as eps falls, so a correct float64 model, layer norm and
   saturated gates included, stays far inside these bounds, while a wrong gradient misses
   them by its own size. When tolerance is set, every element must also have a relative
   error (max_rel_err below) of at most tolerance: the stricter check for code whose
   gradients are known to be smooth. */
typedef struct tg_gradcheck_opts {
    double  eps;            /* finite-difference step; 0 means 1e-6                      */
    double  atol, rtol;     /* the rule's bounds; 0 means 1e-5 and 1e-3                  */
    double  floor;          /* rel. error denominator is max(|analytic|, |numeric|, floor);
                               0 means 1e-3 (below it the error is effectively absolute)  */
    double  tolerance;      /* > 0: also require every relative error <= tolerance       */
    int64_t max_per_tensor; /* check at most this many elements per tensor (spread evenly);
                               0 means all                                                */
} tg_gradcheck_opts;

typedef struct tg_gradcheck_result {
    double  max_rel_err;    /* worst relative error over every checked element     */
    int     worst_tensor;   /* which tensor (index into the list / params)          */
    int64_t worst_index;    /* flat element index in that tensor                    */
    double  analytic;       /* the gradients at the worst element                   */
    double  numeric;
    int64_t checked;        /* elements compared                                    */
    int64_t failed;         /* elements outside atol + rtol * |numeric|             */
    int     passed;         /* 1 when failed == 0 (and max_rel_err <= tolerance)    */
} tg_gradcheck_result;

/* Compares the gradients backward gives for tensors[0..n-1] (float64 tensors that
   requires_grad; they are perturbed in place and restored) with central differences of
   fn's loss, by the rule above. per_tensor (may be NULL) receives each tensor's worst
   relative error. The tensors' gradients are left zeroed.
   Returns TG_ERR_NULL / TG_ERR_DTYPE (not float64) / TG_ERR_ARG on bad arguments, or the
   tape error fn's computation produced; the reason in tg_last_error(), which for a
   failing fn is its tape's message ("gradcheck: the loss function failed: matmul: ...").
   A mismatch is not an error: TG_OK with result->passed == 0.

   Reading a failure: rerun with eps 10 times smaller. Truncation error falls with the
   square of the step (100 times smaller), so a mismatch from a steep but correct function
   shrinks away; a wrong gradient stays as large as it was. */
tg_status tg_gradcheck(tg_tensor **tensors, int n, tg_loss_fn fn, void *user,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                       double *per_tensor);

/* The same over every parameter of ps (which must be float64); errors as tg_gradcheck. */
tg_status tg_gradcheck_params(tg_params *ps, tg_loss_fn fn, void *user,
                              const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                              double *per_tensor);

#ifdef __cplusplus
}
#endif
#endif /* TG_AUTOGRAD_GRADCHECK_H */
