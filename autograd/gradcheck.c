/* autograd/gradcheck.c: compares backward's gradients with central differences in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"

/* f(x) on a fresh tape; NAN when fn fails (the status goes to *st). */
static double eval_loss(tg_tape *tape, tg_loss_fn fn, void *user, tg_status *st)
{
    tg_tape_reset(tape);
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *loss = fn(tape, user);
    tg_tape_set_grad_enabled(tape, true);
    if (!loss || tg_tape_status(tape) != TG_OK) {
        *st = tg_tape_status(tape) != TG_OK ? tg_tape_status(tape) : TG_ERR_NULL;
        return NAN;
    }
    return tg_tensor_get(loss, 0);
}

tg_status tg_gradcheck(tg_tensor **tensors, int n, tg_loss_fn fn, void *user,
                       const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                       double *per_tensor)
{
    if (!tensors || !fn || !result)
        return TG_ERR_NULL;
    if (n < 1)
        return TG_ERR_ARG;
    for (int k = 0; k < n; k++) {
        if (!tensors[k])
            return TG_ERR_NULL;
        if (tensors[k]->dtype != TG_F64)
            return TG_ERR_DTYPE;
        if (!tensors[k]->grad)
            return TG_ERR_ARG;   /* call tg_tensor_requires_grad first */
    }
    double eps = opts && opts->eps > 0 ? opts->eps : 1e-5;
    double floor_ = opts && opts->floor > 0 ? opts->floor : 1e-3;
    double tol = opts && opts->tolerance > 0 ? opts->tolerance : 1e-7;
    int64_t most = opts && opts->max_per_tensor > 0 ? opts->max_per_tensor : 0;

    memset(result, 0, sizeof *result);
    result->worst_index = -1;
    tg_tape *tape = tg_tape_new();
    if (!tape)
        return TG_ERR_NOMEM;

    /* analytic gradients: one backward pass from zeroed gradients */
    for (int k = 0; k < n; k++)
        tg_tensor_zero_grad(tensors[k]);
    tg_status st = TG_OK;
    tg_tensor *loss = fn(tape, user);
    st = tg_backward(tape, loss);
    if (st != TG_OK) {
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
            double fm = eval_loss(tape, fn, user, &st);
            x[i] = saved;
            double numeric = (fp - fm) / (2 * eps), analytic = g[i];
            double denom = fmax(fmax(fabs(analytic), fabs(numeric)), floor_);
            double rel = fabs(analytic - numeric) / denom;
            if (isnan(rel))
                rel = INFINITY;
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
    result->passed = st == TG_OK && result->max_rel_err <= tol;
    tg_tape_free(tape);
    return st;
}

tg_status tg_gradcheck_params(tg_params *ps, tg_loss_fn fn, void *user,
                              const tg_gradcheck_opts *opts, tg_gradcheck_result *result,
                              double *per_tensor)
{
    if (!ps)
        return TG_ERR_NULL;
    int n = tg_params_count(ps);
    if (n < 1)
        return TG_ERR_ARG;
    tg_tensor **ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return TG_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        ts[i] = tg_params_at(ps, i);
    tg_status st = tg_gradcheck(ts, n, fn, user, opts, result, per_tensor);
    free(ts);
    return st;
}
