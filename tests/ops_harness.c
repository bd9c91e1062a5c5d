/* tests/ops_harness.c: helpers shared by the ops test files (see tests/ops_harness.h). */
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/autograd_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

tg_tensor *mk(tg_dtype dt, int ndim, const int64_t *shape, const double *vals)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    if (vals)
        tg_tensor_fill_values(t, vals);
    return t;
}

tg_tensor *rnd(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = mk(TG_F64, ndim, shape, NULL);
    tg_tensor_fill_uniform(t, &r, lo, hi);
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    return t;
}

void expect_values(const tg_tensor *t, const double *want, double tol)
{
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++)
        ck_assert_msg(fabs(tg_tensor_get(t, i) - want[i]) <= tol,
                      "element %lld = %.17g, expected %.17g", (long long)i,
                      tg_tensor_get(t, i), want[i]);
}

void expect_values_n(const tg_tensor *t, const double *want, int64_t n, double tol)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->numel, n);
    expect_values(t, want, tol);
}

void set_threads(int threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

/* One gradient-check case, handed to gc_loss through tg_gradcheck's user pointer. */
typedef struct gc_case {
    build_fn   build;
    tg_tensor **in;
    double     s;
    tg_tensor *w;       /* made on first call, shaped like the op's output */
} gc_case;

static tg_tensor *gc_loss(tg_tape *tape, void *user)
{
    gc_case *c = user;
    tg_tensor *y = c->build(tape, c->in, c->s);
    if (!y)
        return NULL;
    if (!c->w) {
        tg_rng r;
        tg_rng_seed(&r, 99);
        c->w = tg_tensor_new(TG_F64, y->ndim, y->shape);
        tg_tensor_fill_uniform(c->w, &r, -1, 1);
    }
    return tg_sum(tape, tg_mul(tape, y, c->w));
}

double gradcheck_case(build_fn build, tg_tensor **in, int nin, double s)
{
    gc_case c = { build, in, s, NULL };
    tg_gradcheck_result res;
    tg_status st = tg_gradcheck(in, nin, gc_loss, &c, NULL, &res, NULL);
    ck_assert_msg(st == TG_OK, "gradcheck failed to run: %s", tg_status_str(st));
    ck_assert_msg(res.passed, "worst rel err %.3g at tensor %d index %lld: analytic %.12g "
                  "numeric %.12g", res.max_rel_err, res.worst_tensor,
                  (long long)res.worst_index, res.analytic, res.numeric);
    tg_tensor_free(c.w);
    return res.max_rel_err;
}

void free_all(tg_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        tg_tensor_free(ts[i]);
}
