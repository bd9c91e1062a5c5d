/* tests/ops_harness.h: helpers shared by the ops test files (tests/test_ops_*.c and
   test_custom.c): tensors from values, random float64 leaves, value checks, the thread
   count and the gradient-check harness. */
#ifndef TG_TESTS_OPS_HARNESS_H
#define TG_TESTS_OPS_HARNESS_H

#include "tapegrad.h"

/* A new tensor of dtype dt and the given shape, filled from vals (row-major) unless NULL;
   fails the test if it cannot be made. */
tg_tensor *mk(tg_dtype dt, int ndim, const int64_t *shape, const double *vals);
/* A float64 leaf with requires_grad, uniform in [lo, hi). */
tg_tensor *rnd(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed);
/* Fails the test unless t is non-NULL and every element is within tol of want[i]. */
void expect_values(const tg_tensor *t, const double *want, double tol);
/* expect_values, and t must have exactly n elements. */
void expect_values_n(const tg_tensor *t, const double *want, int64_t n, double tol);
/* OpenMP's thread count for what runs next (nothing to set without OpenMP). */
void set_threads(int threads);

/* Gradient-check harness: loss = sum(op(inputs) * weights), weights fixed and random so
   every output element gets a different upstream gradient. build records the op on tape
   from the inputs in[] and a scalar s (for ops that take one). */
typedef tg_tensor *(*build_fn)(tg_tape *tape, tg_tensor **in, double s);
/* Runs tg_gradcheck on build over the nin inputs; fails the test unless it passes, and
   returns the worst relative error. */
double gradcheck_case(build_fn build, tg_tensor **in, int nin, double s);
/* tg_tensor_free on each of the n tensors. */
void free_all(tg_tensor **ts, int n);

#endif /* TG_TESTS_OPS_HARNESS_H */
