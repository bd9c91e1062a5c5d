/* tests/contract/app.c: an outside program written only against the public headers (tapegrad.h);
   `make check` links it with build/libtapegrad.a and it checks every op's gradient. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

enum { NIN = 3 };
typedef tg_tensor *(*op_fn)(tg_tape *t, tg_tensor **x);

static const int32_t targets[3] = { 1, 0, 3 };
static const int32_t rows[4] = { 2, 0, 2, 1 };

static tg_tensor *f_add(tg_tape *t, tg_tensor **x) { return tg_add(t, x[0], x[2]); }
static tg_tensor *f_sub(tg_tape *t, tg_tensor **x) { return tg_sub(t, x[0], x[2]); }
static tg_tensor *f_mul(tg_tape *t, tg_tensor **x) { return tg_mul(t, x[0], x[2]); }
static tg_tensor *f_div(tg_tape *t, tg_tensor **x) { return tg_div(t, x[0], x[2]); }
static tg_tensor *f_scale(tg_tape *t, tg_tensor **x) { return tg_scale(t, x[0], -1.5); }
static tg_tensor *f_adds(tg_tape *t, tg_tensor **x) { return tg_add_scalar(t, x[0], 2.0); }
static tg_tensor *f_neg(tg_tape *t, tg_tensor **x) { return tg_neg(t, x[0]); }
static tg_tensor *f_sigmoid(tg_tape *t, tg_tensor **x) { return tg_sigmoid(t, x[0]); }
static tg_tensor *f_tanh(tg_tape *t, tg_tensor **x) { return tg_tanh(t, x[0]); }
static tg_tensor *f_relu(tg_tape *t, tg_tensor **x) { return tg_relu(t, x[0]); }
static tg_tensor *f_exp(tg_tape *t, tg_tensor **x) { return tg_exp(t, x[0]); }
static tg_tensor *f_log(tg_tape *t, tg_tensor **x) { return tg_log(t, x[0]); }
static tg_tensor *f_matmul(tg_tape *t, tg_tensor **x) { return tg_matmul(t, x[0], x[1]); }
static tg_tensor *f_transpose(tg_tape *t, tg_tensor **x) { return tg_transpose(t, x[0]); }
static tg_tensor *f_reshape(tg_tape *t, tg_tensor **x)
{
    return tg_reshape(t, x[0], 2, (int64_t[]){ 2, 6 });
}
static tg_tensor *f_concat(tg_tape *t, tg_tensor **x) { return tg_concat(t, x[0], x[0], 1); }
static tg_tensor *f_slice(tg_tape *t, tg_tensor **x) { return tg_slice(t, x[0], 1, 1, 2); }
static tg_tensor *f_sum(tg_tape *t, tg_tensor **x) { return tg_sum(t, tg_tanh(t, x[0])); }
static tg_tensor *f_mean(tg_tape *t, tg_tensor **x) { return tg_mean(t, tg_tanh(t, x[0])); }
static tg_tensor *f_sum_dim(tg_tape *t, tg_tensor **x) { return tg_sum_dim(t, x[0], 0); }
static tg_tensor *f_softmax(tg_tape *t, tg_tensor **x) { return tg_softmax(t, x[0]); }
static tg_tensor *f_log_softmax(tg_tape *t, tg_tensor **x) { return tg_log_softmax(t, x[0]); }
static tg_tensor *f_ce(tg_tape *t, tg_tensor **x) { return tg_cross_entropy(t, x[0], targets); }
static tg_tensor *f_embedding(tg_tape *t, tg_tensor **x) { return tg_embedding(t, x[0], rows, 4); }
static tg_tensor *f_mean_dim(tg_tape *t, tg_tensor **x) { return tg_mean_dim(t, x[0], -1); }
static tg_tensor *f_var_dim(tg_tape *t, tg_tensor **x) { return tg_var_dim(t, x[0], 0, 1); }
static tg_tensor *f_max_dim(tg_tape *t, tg_tensor **x) { return tg_max_dim(t, x[0], 1); }
static tg_tensor *f_lse_dim(tg_tape *t, tg_tensor **x) { return tg_logsumexp_dim(t, x[0], -1); }
static tg_tensor *f_layer_norm(tg_tape *t, tg_tensor **x)
{
    return tg_layer_norm(t, x[0], x[2], x[2], 1e-5);
}
static tg_tensor *f_mse_loss(tg_tape *t, tg_tensor **x)
{
    return tg_mse_loss(t, x[0], tg_tanh(t, x[0]));
}
static tg_tensor *f_stack(tg_tape *t, tg_tensor **x)
{
    tg_tensor *xs[2] = { x[0], tg_tanh(t, x[0]) };
    return tg_stack(t, xs, 2, -1);
}
static tg_tensor *f_chunk(tg_tape *t, tg_tensor **x)
{
    tg_tensor *parts[2];
    return tg_chunk(t, x[0], 2, -1, parts) == TG_OK ? tg_mul(t, parts[0], parts[1]) : NULL;
}
static tg_tensor *f_flip(tg_tape *t, tg_tensor **x) { return tg_flip(t, x[0], 0); }
/* a user-defined op: y = x^3, dy/dx = 3x^2 (float64 here) */
static void cube_fwd(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out)
{
    (void)ctx, (void)nin;
    const double *x = in[0]->data;
    for (int64_t i = 0; i < out->numel; i++)
        ((double *)out->data)[i] = x[i] * x[i] * x[i];
}
static void cube_bwd(void *ctx, const tg_tensor *const *in, int nin, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)nin, (void)out;
    const double *x = in[0]->data, *g = dout->data;
    for (int64_t i = 0; din[0] && i < dout->numel; i++)
        ((double *)din[0]->data)[i] += 3 * x[i] * x[i] * g[i];
}
static const tg_custom_op cube_op = { "cube", cube_fwd, cube_bwd };
static tg_tensor *f_custom(tg_tape *t, tg_tensor **x)
{
    return tg_custom(t, &cube_op, x, 1, x[0]->ndim, x[0]->shape, NULL);
}
static tg_tensor *f_bmm(tg_tape *t, tg_tensor **x)
{
    return tg_bmm(t, tg_reshape(t, x[0], 3, (int64_t[]){ 1, 3, 4 }),
                  tg_reshape(t, x[1], 3, (int64_t[]){ 1, 4, 2 }));
}

static tg_tensor *f_sqrt(tg_tape *t, tg_tensor **x) { return tg_sqrt(t, x[0]); }
static tg_tensor *f_rsqrt(tg_tape *t, tg_tensor **x) { return tg_rsqrt(t, x[0]); }
static tg_tensor *f_pow(tg_tape *t, tg_tensor **x) { return tg_pow(t, x[0], 1.7); }
/* the inputs lie in [0.5, 0.87]: shifted by -0.7 they take both signs, away from 0 */
static tg_tensor *f_abs(tg_tape *t, tg_tensor **x)
{
    return tg_abs(t, tg_add_scalar(t, x[0], -0.7));
}
static tg_tensor *f_clamp(tg_tape *t, tg_tensor **x) { return tg_clamp(t, x[0], 0.6, 0.8); }
static tg_tensor *f_softplus(tg_tape *t, tg_tensor **x)
{
    return tg_softplus(t, tg_add_scalar(t, x[0], -0.7));
}
static tg_tensor *f_maximum(tg_tape *t, tg_tensor **x) { return tg_maximum(t, x[0], x[2]); }
static tg_tensor *f_minimum(tg_tape *t, tg_tensor **x) { return tg_minimum(t, x[0], x[2]); }
static tg_tensor *f_where(tg_tape *t, tg_tensor **x)
{
    int64_t rows3[2] = { 3, 1 };
    tg_tensor *mask = tg_tape_tensor(t, TG_F64, 2, rows3);    /* rows 0 and 2 take x[0] */
    if (mask)
        ((double *)mask->data)[0] = ((double *)mask->data)[2] = 1.0;
    return tg_where(t, mask, x[0], tg_scale(t, x[2], 2.0));
}

static const struct { const char *name; op_fn f; } ops[] = {
    { "add", f_add }, { "sub", f_sub }, { "mul", f_mul }, { "div", f_div },
    { "scale", f_scale }, { "add_scalar", f_adds }, { "neg", f_neg },
    { "sigmoid", f_sigmoid }, { "tanh", f_tanh }, { "relu", f_relu }, { "exp", f_exp },
    { "log", f_log }, { "matmul", f_matmul }, { "transpose", f_transpose },
    { "reshape", f_reshape }, { "concat", f_concat }, { "slice", f_slice }, { "sum", f_sum },
    { "mean", f_mean }, { "sum_dim", f_sum_dim }, { "softmax", f_softmax },
    { "log_softmax", f_log_softmax }, { "cross_entropy", f_ce }, { "embedding", f_embedding },
    { "mean_dim", f_mean_dim }, { "var_dim", f_var_dim }, { "max_dim", f_max_dim },
    { "logsumexp_dim", f_lse_dim }, { "layer_norm", f_layer_norm }, { "mse_loss", f_mse_loss },
    { "stack", f_stack }, { "chunk", f_chunk }, { "flip", f_flip }, { "bmm", f_bmm },
    { "custom", f_custom }, { "sqrt", f_sqrt }, { "rsqrt", f_rsqrt }, { "pow", f_pow },
    { "abs", f_abs }, { "clamp", f_clamp }, { "softplus", f_softplus },
    { "maximum", f_maximum }, { "minimum", f_minimum }, { "where", f_where },
};

/* loss = sum(op(x) * weights), the weights fixed: 0.3, 0.6, 0.9, ... */
static tg_tensor *loss_of(tg_tape *t, op_fn f, tg_tensor **x)
{
    tg_tensor *y = f(t, x);
    if (!y)
        return NULL;
    tg_tensor *w = tg_tape_tensor(t, TG_F64, y->ndim, y->shape);
    for (int64_t i = 0; w && i < w->numel; i++)
        ((double *)w->data)[i] = 0.3 * (double)(i % 7 + 1) - 1.0;
    return tg_sum(t, tg_mul(t, y, w));
}

int main(void)
{
    int64_t s34[2] = { 3, 4 }, s42[2] = { 4, 2 }, s4[1] = { 4 };
    tg_tensor *x[NIN] = { tg_tensor_new(TG_F64, 2, s34), tg_tensor_new(TG_F64, 2, s42),
                          tg_tensor_new(TG_F64, 1, s4) };
    for (int k = 0; k < NIN; k++) {
        for (int64_t i = 0; i < x[k]->numel; i++)   /* positive, away from relu's kink */
            ((double *)x[k]->data)[i] = 0.5 + 0.37 * (double)((i * 5 + k * 3) % 11) / 11.0;
        tg_tensor_requires_grad(x[k]);
    }
    tg_tape *tape = tg_tape_new();
    int failures = 0;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        double worst = 0;
        for (int k = 0; k < NIN; k++)
            memset(x[k]->grad, 0, (size_t)x[k]->numel * sizeof(double));
        tg_tape_reset(tape);
        if (tg_backward(tape, loss_of(tape, ops[o].f, x)) != TG_OK) {
            printf("%s: %s\n", ops[o].name, tg_tape_errmsg(tape));
            return 1;
        }
        for (int k = 0; k < NIN; k++) {
            double *v = x[k]->data, *g = x[k]->grad;
            for (int64_t i = 0; i < x[k]->numel; i++) {
                double saved = v[i], h = 1e-5, fp, fm;
                v[i] = saved + h;
                tg_tape_reset(tape);
                fp = ((double *)loss_of(tape, ops[o].f, x)->data)[0];
                v[i] = saved - h;
                tg_tape_reset(tape);
                fm = ((double *)loss_of(tape, ops[o].f, x)->data)[0];
                v[i] = saved;
                double num = (fp - fm) / (2 * h);
                double err = fabs(num - g[i]) / fmax(fmax(fabs(num), fabs(g[i])), 1e-3);
                worst = err > worst ? err : worst;
            }
        }
        failures += worst > 1e-7;
        printf("contract %-14s max_rel_err=%.2e %s\n", ops[o].name, worst,
               worst > 1e-7 ? "FAIL" : "ok");
    }
    tg_tape_free(tape);
    for (int k = 0; k < NIN; k++)
        tg_tensor_free(x[k]);
    printf("contract: %zu passed, %d failed\n", sizeof ops / sizeof ops[0] - (size_t)failures,
           failures);
    return failures ? 1 : 0;
}
