/* nn/linear.c: the linear layer (x @ w + b as one affine node), a cell's gate, and the
   small helpers the other nn/ files share. */
#include <stdarg.h>
#include <stdio.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, in/out the layer's sizes. */

tg_tensor *tg_linear_apply(tg_tape *tape, const tg_linear *l, tg_tensor *x)
{
    if (!l)
        return tg_fail(tape, TG_ERR_NULL, "linear", "NULL layer");
    return tg_affine(tape, x, l->w, l->b);                  /* (B,in) @ (in,out) + (out) */
}

tg_tensor *tg_gate(tg_tape *tape, tg_unary_op act, const tg_linear *l, tg_tensor *x,
                   const char *name)
{
    if (!act)
        return tg_fail(tape, TG_ERR_NULL, "gate", "%s: NULL activation", name ? name : "");
    /* sigmoid and tanh gates are one node (the pre-activation is never stored); any
       other activation is applied to the linear layer's output (which reports a NULL
       layer) */
    if (name)
        tg_tape_push_scope(tape, name);     /* a failure inside reads "<name>: <op>: ..." */
    tg_tensor *g = l && (act == tg_sigmoid || act == tg_tanh)
                       ? tg_affine_act_op(tape, x, l->w, l->b, act == tg_tanh)
                       : act(tape, tg_linear_apply(tape, l, x));
    if (!name)
        return g;
    tg_tape_pop_scope(tape);
    return tg_name(tape, g, name);
}

bool tg_is_matrix(const tg_tensor *t, tg_dtype dtype, int64_t rows, int64_t cols)
{
    return t && t->dtype == dtype && t->ndim == 2 && t->shape[0] == rows &&
           t->shape[1] == cols;
}

bool tg_check_step(tg_tape *tape, const char *who, const tg_tensor *x, const tg_tensor *h,
                   const tg_tensor *c, int input_size, int hidden_size)
{
    if (!x || !h)
        return true;
    int64_t B = x->shape[0];
    bool ok = x->ndim == 2 && x->shape[1] == input_size &&
              h->ndim == 2 && h->shape[0] == B && h->shape[1] == hidden_size &&
              (!c || (c->ndim == 2 && c->shape[0] == B && c->shape[1] == hidden_size));
    if (!ok) {
        char xs[64], hs[64], cs[64] = "";
        tg_shape_str(x, xs, sizeof xs);
        tg_shape_str(h, hs, sizeof hs);
        if (c)
            tg_shape_str(c, cs, sizeof cs);
        tg_fail(tape, TG_ERR_SHAPE, who, "x %s, h %s%s%s do not fit input_size %d, "
                "hidden_size %d (want x (B,%d), h (B,%d))", xs, hs, c ? ", c " : "",
                cs, input_size, hidden_size, input_size, hidden_size);
    }
    return ok;
}

bool tg_param_name(char *out, const char *prefix, const char *name)
{
    int n = snprintf(out, 64, "%s.%s", prefix ? prefix : "", name);
    return prefix && n >= 0 && n < 64;
}

bool tg_step_begin(tg_tape *tape, const char *who, const void *cell, tg_tensor *x,
                   tg_tensor *const *state, tg_tensor **next, int nstate, int input_size,
                   int hidden_size)
{
    for (int k = 0; next && k < nstate; k++)
        next[k] = NULL;
    if (!cell || !state || !next) {
        tg_fail(tape, TG_ERR_NULL, who, "NULL %s", !cell ? "cell" : !state ? "state" : "next");
        return false;
    }
    return tg_check_step(tape, who, x, state[0], nstate > 1 ? state[1] : NULL, input_size,
                         hidden_size);
}

void tg_step_end_hc(tg_tensor **next, tg_tensor *h, tg_tensor *c)
{
    if (h) {
        next[0] = h;
        next[1] = c;
    }
}

tg_tensor *tg_blend(tg_tape *tape, tg_tensor *z, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *keep = tg_add_scalar(tape, tg_scale(tape, z, -1.0), 1.0);          /* 1-z */
    return tg_add(tape, tg_mul(tape, keep, a), tg_mul(tape, z, b));
}

tg_status tg_init_gates(tg_params *ps, const char *prefix, int n, const char *const *names,
                        tg_linear *const *gates, int input_size, int hidden_size,
                        const tg_init *init, tg_rng *rng, int *cell_input, int *cell_hidden)
{
    if (!prefix)
        return tg_error_set(TG_ERR_NULL, "cell init: prefix is NULL");
    if (input_size < 1 || hidden_size < 1)
        return tg_error_set(TG_ERR_ARG, "cell init: %s: input_size %d, hidden_size %d (both "
                            "must be >= 1)", prefix, input_size, hidden_size);
    for (int g = 0; g < n; g++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%s", prefix, names[g]);
        tg_status st = tg_linear_init(gates[g], ps, name, hidden_size + input_size,
                                      hidden_size, hidden_size, init, rng); /* (H+I) -> H */
        if (st != TG_OK)
            return st;
    }
    *cell_input = input_size;
    *cell_hidden = hidden_size;
    return TG_OK;
}

tg_status tg_cell_init_error(const char *type, tg_status status, const char *prefix,
                             int input_size, int hidden_size)
{
    if (status == TG_ERR_NULL)
        return tg_error_set(status, "%s init: the cell, prefix or rng is NULL", type);
    return tg_error_set(status, "%s init: %.64s: input_size %d, hidden_size %d (both must be "
                        ">= 1), or a parameter name longer than 63 bytes", type,
                        prefix ? prefix : "", input_size, hidden_size);
}
