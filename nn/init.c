/* nn/init.c: parameter initialisation (PyTorch default, char-rnn uniform, Xavier,
   orthogonal) and tg_linear_init, which every layer and cell builds its weights with. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "tensor/tensor_internal.h"

/* The default when a caller passes no tg_init: PyTorch's. */
static const tg_init default_init = { TG_INIT_TORCH, 0.0, false };

/* char-rnn's bound, used by TG_INIT_UNIFORM when scale is 0. */
#define CHAR_RNN_SCALE 0.08

/* TG_OK, or TG_ERR_ARG with the reason given on behalf of who. */
static tg_status check_init(const char *who, const char *name, const tg_init *init)
{
    switch (init->kind) {
    case TG_INIT_TORCH:
    case TG_INIT_XAVIER:
    case TG_INIT_ORTHOGONAL:
        return TG_OK;
    case TG_INIT_UNIFORM:
        if (isfinite(init->scale) && init->scale >= 0)
            return TG_OK;
        return tg_error_set(TG_ERR_ARG, "%s: %s: uniform scale %g must be finite and >= 0",
                            who, name, init->scale);
    }
    return tg_error_set(TG_ERR_ARG, "%s: %s: unknown init kind %d", who, name,
                        (int)init->kind);
}

/* Adds parameter name of shape (d0[, d1]) to ps for who, with a reason on failure: a
   name that is too long or taken, or no memory (TG_ERR_ARG / TG_ERR_NOMEM). */
static tg_tensor *add_param(const char *who, tg_params *ps, const char *name, int ndim,
                            int64_t d0, int64_t d1)
{
    if (strlen(name) > 63) {
        tg_error_set(TG_ERR_ARG, "%s: parameter name \"%.20s...\" is longer than 63 bytes",
                     who, name);
        return NULL;
    }
    if (tg_params_find(ps, name)) {
        tg_error_set(TG_ERR_ARG, "%s: parameter name \"%s\" is taken", who, name);
        return NULL;
    }
    tg_tensor *t = tg_params_add(ps, name, ndim, (const int64_t[]){ d0, d1 });
    if (!t)
        tg_error_wrap("%s", who);
    return t;
}

static double init_bound(const tg_init *init, int fan, int64_t in, int64_t out)
{
    switch (init->kind) {
    case TG_INIT_TORCH:                 /* weights and biases: U(-1/sqrt(fan), 1/sqrt(fan)) */
        return 1.0 / sqrt((double)fan);
    case TG_INIT_UNIFORM:               /* weights and biases: U(-scale, scale) */
        return init->scale > 0 ? init->scale : CHAR_RNN_SCALE;
    case TG_INIT_XAVIER:                /* weights: U(+-sqrt(6/(in+out))), biases: 0 */
    case TG_INIT_ORTHOGONAL:            /* the same; tg_charlm_init adds the rest */
        break;
    }
    return sqrt(6.0 / ((double)in + (double)out));
}

/* The checks tg_init_weight and tg_linear_init share; dst (named dst_name in the
 * message) is where the result goes. A NULL *init becomes the default. */
static tg_status check_weight_args(const char *who, const void *dst, const char *dst_name,
                                   const tg_params *ps, const char *name, const tg_rng *rng,
                                   int in, int out, int fan, const tg_init **init)
{
    if (!dst || !ps || !name || !rng)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !dst ? dst_name : !ps ? "params" : !name ? "name" : "rng");
    if (!*init)
        *init = &default_init;
    if (in < 1 || out < 1 || fan < 1)
        return tg_error_set(TG_ERR_ARG, "%s: %s: in %d, out %d, fan %d (all must be >= 1)",
                            who, name, in, out, fan);
    return check_init(who, name, *init);
}

tg_status tg_init_weight(tg_tensor **w, tg_params *ps, const char *name, int in, int out,
                         int fan, const tg_init *init, tg_rng *rng)
{
    const char *who = "init_weight";
    tg_status st = check_weight_args(who, w, "w", ps, name, rng, in, out, fan, &init);
    if (st != TG_OK)
        return st;
    tg_tensor *t = add_param(who, ps, name, 2, in, out);
    if (!t)
        return tg_last_status();
    double bound = init_bound(init, fan, in, out);
    tg_tensor_fill_uniform(t, rng, -bound, bound);
    *w = t;
    return TG_OK;
}

tg_status tg_init_vector(tg_tensor **v, tg_params *ps, const char *name, int n, double value)
{
    const char *who = "init_vector";
    if (!v || !ps || !name)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !v ? "v" : !ps ? "params" : "name");
    if (n < 1)
        return tg_error_set(TG_ERR_ARG, "%s: %s: n %d (must be >= 1)", who, name, n);
    tg_tensor *t = add_param(who, ps, name, 1, n, 0);
    if (!t)
        return tg_last_status();
    tg_tensor_fill(t, value);
    *v = t;
    return TG_OK;
}

tg_status tg_linear_init(tg_linear *l, tg_params *ps, const char *name, int in, int out,
                         int fan, const tg_init *init, tg_rng *rng)
{
    const char *who = "linear_init";
    tg_status st = check_weight_args(who, l, "layer", ps, name, rng, in, out, fan, &init);
    if (st != TG_OK)
        return st;

    char wname[80], bname[80];
    snprintf(wname, sizeof wname, "%.70s.w", name);
    snprintf(bname, sizeof bname, "%.70s.b", name);
    if (tg_params_find(ps, bname))              /* neither is added when either is taken */
        return tg_error_set(TG_ERR_ARG, "%s: parameter name \"%s\" is taken", who, bname);
    tg_tensor *w = add_param(who, ps, wname, 2, in, out);
    tg_tensor *b = w ? add_param(who, ps, bname, 1, out, 0) : NULL;
    if (!w || !b)
        return tg_last_status();

    double bound = init_bound(init, fan, in, out);
    tg_tensor_fill_uniform(w, rng, -bound, bound);
    if (init->kind == TG_INIT_XAVIER || init->kind == TG_INIT_ORTHOGONAL)
        tg_tensor_fill(b, 0.0);
    else
        tg_tensor_fill_uniform(b, rng, -bound, bound);
    l->w = w;
    l->b = b;
    return TG_OK;
}

tg_status tg_embedding_init(tg_tensor **table, tg_params *ps, const char *name, int vocab,
                            int dim, const tg_init *init, tg_rng *rng)
{
    const char *who = "embedding_init";
    if (!table || !ps || !name || !rng)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !table ? "table" : !ps ? "params" : !name ? "name" : "rng");
    if (!init)
        init = &default_init;
    if (vocab < 1 || dim < 1)
        return tg_error_set(TG_ERR_ARG, "%s: %s: vocab %d, dim %d (both must be >= 1)", who,
                            name, vocab, dim);
    if (check_init(who, name, init) != TG_OK)
        return TG_ERR_ARG;
    tg_tensor *t = add_param(who, ps, name, 2, vocab, dim);
    if (!t)
        return tg_last_status();
    double bound;
    switch (init->kind) {
    case TG_INIT_TORCH:                 /* torch.nn.Embedding: N(0, 1) */
        tg_tensor_fill_normal(t, rng, 0.0, 1.0);
        break;
    case TG_INIT_UNIFORM:
        bound = init->scale > 0 ? init->scale : CHAR_RNN_SCALE;
        tg_tensor_fill_uniform(t, rng, -bound, bound);
        break;
    case TG_INIT_XAVIER:
    case TG_INIT_ORTHOGONAL:
        bound = sqrt(6.0 / ((double)vocab + (double)dim));
        tg_tensor_fill_uniform(t, rng, -bound, bound);
        break;
    }
    *table = t;
    return TG_OK;
}

/* ---- orthogonal ----------------------------------------------------------------------
 * q (n,n) row-major, standard normal; for each column j in turn: subtract its projection
 * on every earlier (already unit) column p, then divide by its norm. The columns end
 * orthonormal, so q^T q = I and q is orthogonal.
 */
static void gram_schmidt(double *q, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        for (int64_t p = 0; p < j; p++) {
            double dot = 0;
            for (int64_t r = 0; r < n; r++)
                dot += q[r * n + j] * q[r * n + p];
            for (int64_t r = 0; r < n; r++)
                q[r * n + j] -= dot * q[r * n + p];
        }
        double norm = 0;
        for (int64_t r = 0; r < n; r++)
            norm += q[r * n + j] * q[r * n + j];
        norm = sqrt(norm);
        for (int64_t r = 0; r < n; r++)
            q[r * n + j] = norm > 0 ? q[r * n + j] / norm : 0.0;
    }
}

tg_status tg_init_orthogonal(tg_tensor *w, int64_t n, tg_rng *rng)
{
    if (!w || !rng)
        return tg_error_set(TG_ERR_NULL, "init_orthogonal: NULL %s", !w ? "tensor" : "rng");
    if (n < 1 || w->ndim != 2 || w->shape[1] != n || w->shape[0] < n)
        return tg_error_set(TG_ERR_ARG, "init_orthogonal: need a (rows >= %lld, %lld) "
                            "matrix, got %s", (long long)n, (long long)n,
                            w->ndim == 2 ? "another shape" : "a tensor that is not 2-D");
    if (n > 65536)
        return tg_error_set(TG_ERR_ARG, "init_orthogonal: n = %lld is too large",
                            (long long)n);
    double *q = malloc((size_t)n * (size_t)n * sizeof *q);
    if (!q)
        return tg_error_set(TG_ERR_NOMEM, "init_orthogonal: out of memory for %lld x %lld",
                            (long long)n, (long long)n);
    for (int64_t k = 0; k < n * n; k++)
        q[k] = tg_rng_normal(rng);
    gram_schmidt(q, n);
    for (int64_t k = 0; k < n * n; k++)
        tg_tensor_set(w, k, q[k]);
    free(q);
    return TG_OK;
}

tg_status tg_init_orthogonal_stack(tg_params *ps, int first, int end, int hidden,
                                   int one_hot_rows, const char *layer0, tg_rng *rng)
{
    size_t layer0_len = strlen(layer0);
    for (int i = first; i < end; i++) {
        const char *name = tg_params_name(ps, i);
        tg_tensor *w = tg_params_at(ps, i);
        size_t len = strlen(name);
        if (len < 2 || strcmp(name + len - 2, ".w") != 0 || w->ndim != 2 ||
            w->shape[1] != hidden || w->shape[0] < hidden)
            continue;
        tg_status st = tg_init_orthogonal(w, hidden, rng);
        if (st != TG_OK)
            return st;
        /* one-hot input: the first layer's input rows are an embedding table */
        if (one_hot_rows > 0 && strncmp(name, layer0, layer0_len) == 0 &&
            w->shape[0] == (int64_t)hidden + one_hot_rows)
            for (int64_t k = (int64_t)hidden * hidden; k < w->numel; k++)
                tg_tensor_set(w, k, tg_rng_normal(rng));
    }
    return TG_OK;
}
