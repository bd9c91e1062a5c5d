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

typedef struct tg_gradcheck_opts {
    double  eps;            /* finite-difference step; 0 means 1e-5                      */
    double  floor;          /* rel. error denominator is max(|analytic|, |numeric|, floor);
                               0 means 1e-3 (below it the error is effectively absolute)  */
    double  tolerance;      /* pass when every relative error <= tolerance; 0 means 1e-7 */
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
    int     passed;         /* 1 when max_rel_err <= tolerance                      */
} tg_gradcheck_result;

/* Compares the gradients backward gives for tensors[0..n-1] (float64 tensors that
   requires_grad; they are perturbed in place and restored) with central differences
   (f(x+eps) - f(x-eps)) / 2eps of fn's loss. per_tensor (may be NULL) receives each
   tensor's worst relative error. The tensors' gradients are left zeroed.
   Returns TG_ERR_NULL / TG_ERR_DTYPE (not float64) / TG_ERR_ARG on bad arguments, or the
   tape error fn's computation produced. */
tg_status tg_gradcheck(tg_tensor **tensors, int n, tg_loss_fn fn, void *user,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                       double *per_tensor);

/* The same over every parameter of ps (which must be float64). */
tg_status tg_gradcheck_params(tg_params *ps, tg_loss_fn fn, void *user,
                              const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                              double *per_tensor);

#ifdef __cplusplus
}
#endif
#endif /* TG_AUTOGRAD_GRADCHECK_H */
