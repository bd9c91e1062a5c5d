/* autograd/gradcheck.c: compares backward's gradients with central differences in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd_internal.h"
#include "autograd/gradcheck.h"

/* Says why fn failed on tape (its tape's message) and returns the status. */
static tg_status fn_failed(const tg_tape *tape)
{
    tg_status st = tg_tape_status(tape);
    if (st == TG_OK)
        return tg_error_set(TG_ERR_NULL, "gradcheck: the loss function returned NULL "
                            "without recording an error on its tape");
    return tg_error_set(st, "gradcheck: the loss function failed: %s", tg_tape_errmsg(tape));
}

/* f(x) on a fresh tape; NAN when fn fails (the status goes to *st, the reason is set). */
static double eval_loss(tg_tape *tape, tg_loss_fn fn, void *user, tg_status *st)
{
    tg_tape_reset(tape);
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *loss = fn(tape, user);
    tg_tape_set_grad_enabled(tape, true);
    if (!loss || tg_tape_status(tape) != TG_OK) {
        *st = fn_failed(tape);
        return NAN;
    }
    return tg_tensor_get(loss, 0);
}

/* Checks the arguments; the reason is set on failure. */
static tg_status check_args(tg_tensor **tensors, int n, tg_loss_fn fn,
                            const tg_gradcheck_result *result)
{
    if (!tensors || !fn || !result)
        return tg_error_set(TG_ERR_NULL, "gradcheck: %s is NULL",
                            !tensors ? "tensors" : !fn ? "fn" : "result");
    if (n < 1)
        return tg_error_set(TG_ERR_ARG, "gradcheck: %d tensors (need at least 1)", n);
    for (int k = 0; k < n; k++) {
        if (!tensors[k])
            return tg_error_set(TG_ERR_NULL, "gradcheck: tensor %d is NULL", k);
        if (tensors[k]->dtype != TG_F64)
            return tg_error_set(TG_ERR_DTYPE, "gradcheck: tensor %d is float32 (checks need "
                                "float64)", k);
        if (!tensors[k]->grad)
            return tg_error_set(TG_ERR_ARG, "gradcheck: tensor %d has no gradient (call "
                                "tg_tensor_requires_grad first)", k);
    }
    return TG_OK;
}

tg_status tg_gradcheck(tg_tensor **tensors, int n, tg_loss_fn fn, void *user,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                       double *per_tensor)
{
    tg_status st = check_args(tensors, n, fn, result);
    if (st != TG_OK)
        return st;
    double eps = opts && opts->eps > 0 ? opts->eps : 1e-6;
    double atol = opts && opts->atol > 0 ? opts->atol : 1e-5;
    double rtol = opts && opts->rtol > 0 ? opts->rtol : 1e-3;
    double floor_ = opts && opts->floor > 0 ? opts->floor : 1e-3;
    double tol = opts && opts->tolerance > 0 ? opts->tolerance : INFINITY;
    int64_t most = opts && opts->max_per_tensor > 0 ? opts->max_per_tensor : 0;

    memset(result, 0, sizeof *result);
    result->worst_index = -1;
    tg_tape *tape = tg_tape_new();
    if (!tape)
        return tg_error_set(TG_ERR_NOMEM, "gradcheck: out of memory for a tape");

    /* analytic gradients: one backward pass from zeroed gradients */
    for (int k = 0; k < n; k++)
        tg_tensor_zero_grad(tensors[k]);
    tg_tensor *loss = fn(tape, user);
    st = loss ? tg_backward(tape, loss) : TG_ERR_NULL;
    if (st != TG_OK) {
        st = fn_failed(tape);
        tg_tape_free(tape);
        return st;
    }

    for (int k = 0; k < n && st == TG_OK; k++) {
        tg_tensor *t = tensors[k];
        double *x = t->data, *g = t->grad, worst = 0;
        int64_t stride = most && t->numel > most ? (t->numel + most - 1) / most : 1;
        for (int64_t i = 0; i < t->numel && st == TG_OK; i += stride) {
            double saved = x[i];
            x[i] = saved + eps;
            double fp = eval_loss(tape, fn, user, &st);
            x[i] = saved - eps;
            double fm = st == TG_OK ? eval_loss(tape, fn, user, &st) : NAN;
            x[i] = saved;
            double numeric = (fp - fm) / (2 * eps), analytic = g[i];
            double denom = fmax(fmax(fabs(analytic), fabs(numeric)), floor_);
            double rel = fabs(analytic - numeric) / denom;
            if (isnan(rel))
                rel = INFINITY;
            if (!(fabs(analytic - numeric) <= atol + rtol * fabs(numeric)))   /* NaN fails */
                result->failed++;
            result->checked++;
            if (rel > worst)
                worst = rel;
            if (rel > result->max_rel_err || result->worst_index < 0) {
                result->max_rel_err = rel;
                result->worst_tensor = k;
                result->worst_index = i;
                result->analytic = analytic;
                result->numeric = numeric;
            }
        }
        if (per_tensor)
            per_tensor[k] = worst;
    }
    for (int k = 0; k < n; k++)
        tg_tensor_zero_grad(tensors[k]);
    result->passed = st == TG_OK && result->failed == 0 && result->max_rel_err <= tol;
    tg_tape_free(tape);
    return st;
}

tg_status tg_gradcheck_params(tg_params *ps, tg_loss_fn fn, void *user,
                              const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                              double *per_tensor)
{
    if (!ps)
        return tg_error_set(TG_ERR_NULL, "gradcheck_params: params is NULL");
    int n = tg_params_count(ps);
    if (n < 1)
        return tg_error_set(TG_ERR_ARG, "gradcheck_params: the collection is empty");
    tg_tensor **ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return tg_error_set(TG_ERR_NOMEM, "gradcheck_params: out of memory");
    for (int i = 0; i < n; i++)
        ts[i] = tg_params_at(ps, i);
    tg_status st = tg_gradcheck(ts, n, fn, user, opts, result, per_tensor);
    free(ts);
    return st;
}
