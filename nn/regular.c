/* nn/regular.c: recurrent regularisers' building blocks: dropout masks drawn once and
   reused (variational dropout, weight drop) and zoneout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, H hidden. */

tg_tensor *tg_dropout_mask(tg_tape *t, tg_dtype dtype, int ndim, const int64_t *shape,
                           double p, tg_rng *rng)
{
    if (!(p >= 0.0 && p < 1.0))
        return tg_fail(t, TG_ERR_ARG, "dropout_mask", "p = %g must be in [0, 1)", p);
    if (!rng)
        return tg_fail(t, TG_ERR_NULL, "dropout_mask", "rng is NULL");
    tg_tensor *m = tg_tape_tensor(t, dtype, ndim, shape);
    if (!m)
        return tg_tape_status(t) == TG_OK
                   ? tg_fail(t, TG_ERR_ARG, "dropout_mask", "bad shape or dtype")
                   : NULL;
    double keep = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < m->numel; i++)       /* serially, so any thread count agrees */
        tg_tensor_set(m, i, tg_rng_uniform(rng) >= p ? keep : 0.0);
    return m;
}

tg_tensor *tg_zoneout(tg_tape *t, tg_tensor *prev, tg_tensor *next, double z, bool training,
                      tg_rng *rng)
{
    if (!(z >= 0.0 && z < 1.0))
        return tg_fail(t, TG_ERR_ARG, "zoneout", "z = %g must be in [0, 1)", z);
    if (!prev || !next)
        return tg_fail(t, TG_ERR_NULL, "zoneout", "NULL %s", prev ? "next" : "prev");
    if (z == 0.0)
        return next;
    tg_tensor *change = tg_sub(t, prev, next);                         /* prev - next */
    if (!training)                                      /* the expectation: z*prev + (1-z)*next */
        return tg_add(t, next, tg_scale(t, change, z));
    if (!rng)
        return tg_fail(t, TG_ERR_NULL, "zoneout", "rng is NULL");
    tg_tensor *keep = tg_tape_tensor(t, next->dtype, next->ndim, next->shape);
    if (!keep)
        return NULL;
    for (int64_t i = 0; i < keep->numel; i++)   /* d = 1 (keep prev) with probability z */
        tg_tensor_set(keep, i, tg_rng_uniform(rng) < z ? 1.0 : 0.0);
    return tg_add(t, next, tg_mul(t, keep, change));              /* d*prev + (1-d)*next */
}

tg_tensor *tg_weight_drop(tg_tape *t, tg_tensor *w, int64_t row0, int64_t rows, double p,
                          tg_rng *rng)
{
    if (!w)
        return tg_fail(t, TG_ERR_NULL, "weight_drop", "NULL weight");
    int64_t nrows = w->ndim == 2 ? w->shape[0] : w->numel;
    int64_t cols = w->ndim == 2 ? w->shape[1] : 1;
    if (w->ndim < 1 || w->ndim > 2 || row0 < 0 || rows < 0 || row0 + rows > nrows)
        return tg_fail(t, TG_ERR_ARG, "weight_drop", "rows %lld..%lld of a %d-D weight with "
                       "%lld rows", (long long)row0, (long long)(row0 + rows), w->ndim,
                       (long long)nrows);
    if (p == 0.0 || rows == 0)
        return w;
    tg_tensor *mask = tg_dropout_mask(t, w->dtype, w->ndim, w->shape, p, rng);
    if (!mask)
        return NULL;
    for (int64_t i = 0; i < row0 * cols; i++)         /* rows outside the range are kept */
        tg_tensor_set(mask, i, 1.0);
    for (int64_t i = (row0 + rows) * cols; i < mask->numel; i++)
        tg_tensor_set(mask, i, 1.0);
    return tg_mul(t, w, mask);
}

/* ---- finding a cell's recurrent weights ------------------------------------------
 * Three passes of one step with h_{t-1} zero, its even units only, its odd units only
 * (everything else random, the same in every pass): pass half+1 sets that bit of
 * hits[row] for every parameter row whose gradient is not all zero. Recurrent rows are
 * those hit by exactly one of the half passes and not by the zero pass.
 */
enum { PROBE_BATCH = 32, PROBE_SEED = 0x5EC0A11 };

/* Each layer's parameters (recorded by init) and, once probed, its recurrent rows. */
struct tg_stack_probe {
    tg_tensor **params[TG_MAX_LAYERS];      /* the params layer l's init added, in order */
    int nparams[TG_MAX_LAYERS];
    tg_recurrent_rows *rows[TG_MAX_LAYERS];
    int nrows[TG_MAX_LAYERS];
    bool probed[TG_MAX_LAYERS];
};

/* Rows of parameter t as weight drop counts them: 2-D rows, 1-D elements, else none. */
static int64_t param_rows(const tg_tensor *t)
{
    return t->ndim == 2 ? t->shape[0] : t->ndim == 1 ? t->numel : 0;
}

/* Element i of t's gradient as a double. */
static double grad_at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_F64 ? ((const double *)t->grad)[i] : ((const float *)t->grad)[i];
}

/* One probe pass of layer l: sets bit half+1 (half -1: h zero; 0, 1: its even, odd
   units set) of hits[row] for the rows of its params (concatenated) that get a
   gradient, then zeroes those gradients. A failing step hits nothing. */
static void probe_pass(const tg_rnn_stack *s, int l, int half, uint8_t *hits)
{
    const struct tg_stack_probe *pr = s->probe;
    int H = s->hidden_size, in = l == 0 ? s->input_size : H;
    tg_tape *t = tg_tape_new();
    if (!t)
        return;
    tg_dtype dt = pr->params[l][0]->dtype;
    tg_rng rng;
    tg_rng_seed(&rng, PROBE_SEED);
    tg_tensor *x = tg_tape_tensor(t, dt, 2, (const int64_t[]){ PROBE_BATCH, in });
    tg_tensor *state[TG_MAX_CELL_STATE] = { NULL }, *next[TG_MAX_CELL_STATE] = { NULL };
    const int64_t bh[2] = { PROBE_BATCH, H };
    if (x)
        tg_tensor_fill_uniform(x, &rng, -1, 1);
    for (int k = 0; k < s->type->nstate; k++)
        if ((state[k] = tg_tape_tensor(t, dt, 2, bh)))
            tg_tensor_fill_uniform(state[k], &rng, -1, 1);
    for (int64_t i = 0; state[0] && i < state[0]->numel; i++)   /* h: one half, or none */
        if (half < 0 || (i % H) % 2 != half)
            tg_tensor_set(state[0], i, 0.0);
    s->type->step(t, s->cells[l], x, state, next);
    tg_tensor *loss = NULL;
    for (int k = 0; k < s->type->nstate; k++) {     /* sum_k sum(next_k * r_k), r random */
        tg_tensor *r = tg_tape_tensor(t, dt, 2, bh);
        if (r)
            tg_tensor_fill_uniform(r, &rng, -1, 1);
        tg_tensor *term = tg_sum(t, tg_mul(t, next[k], r));
        loss = k == 0 ? term : tg_add(t, loss, term);
    }
    bool ok = tg_backward(t, loss) == TG_OK;
    for (int i = 0; i < pr->nparams[l]; i++) {
        tg_tensor *w = pr->params[l][i];
        int64_t rows = param_rows(w), cols = rows ? w->numel / rows : 0;
        for (int64_t r = 0; ok && w->grad && r < rows; r++)
            for (int64_t j = 0; j < cols; j++)
                if (grad_at(w, r * cols + j) != 0.0) {
                    hits[r] |= (uint8_t)(1u << (half + 1));
                    break;
                }
        hits += rows;
        if (w->grad)
            memset(w->grad, 0, (size_t)w->numel * tg_dtype_size(w->dtype));
    }
    tg_tape_free(t);
}

/* Where the struct cell (size bytes) holds the pointer w, or SIZE_MAX. */
static size_t pointer_offset(const void *cell, size_t size, const tg_tensor *w)
{
    for (size_t off = 0; off + sizeof w <= size; off += _Alignof(tg_tensor *)) {
        const tg_tensor *p;
        memcpy(&p, (const unsigned char *)cell + off, sizeof p);
        if (p == w)
            return off;
    }
    return SIZE_MAX;
}

/* The runs of recurrent rows of layer l's params into out (NULL: count only). */
static int recurrent_runs(const tg_rnn_stack *s, int l, const uint8_t *hits,
                          tg_recurrent_rows *out)
{
    const struct tg_stack_probe *pr = s->probe;
    int n = 0;
    for (int i = 0; i < pr->nparams[l]; i++) {
        tg_tensor *w = pr->params[l][i];
        int64_t rows = param_rows(w);
        for (int64_t r = 0; r < rows;) {
            bool rec = hits[r] == 2 || hits[r] == 4;         /* one half pass, not zero */
            int64_t r0 = r;
            while (r < rows && (hits[r] == 2 || hits[r] == 4) == rec)
                r++;
            if (rec && out)
                out[n] = (tg_recurrent_rows){ w, r0, r - r0,
                                              pointer_offset(s->cells[l], s->type->size, w) };
            n += rec;
        }
        hits += rows;
    }
    return n;
}

/* The gradients of layer l's params: moved out to buf and zeroed (save), or copied
   back from buf (!save). */
static void swap_grads(const struct tg_stack_probe *pr, int l, unsigned char *buf, bool save)
{
    for (int i = 0; i < pr->nparams[l]; i++) {
        tg_tensor *w = pr->params[l][i];
        size_t bytes = w->grad ? (size_t)w->numel * tg_dtype_size(w->dtype) : 0;
        memcpy(save ? buf : w->grad, save ? w->grad : buf, bytes);
        if (save && bytes)
            memset(w->grad, 0, bytes);
        buf += bytes;
    }
}

/* Probes layer l once: pr->rows[l], pr->nrows[l]. The params' gradients are kept. */
static tg_status probe_layer(const tg_rnn_stack *s, int l)
{
    struct tg_stack_probe *pr = s->probe;
    int64_t total = 0;
    size_t bytes = 0;
    for (int i = 0; i < pr->nparams[l]; i++) {
        const tg_tensor *w = pr->params[l][i];
        total += param_rows(w);
        bytes += w->grad ? (size_t)w->numel * tg_dtype_size(w->dtype) : 0;
    }
    uint8_t *hits = calloc((size_t)total + 1, 1);
    unsigned char *grads = malloc(bytes + 1);
    int n = 0;
    if (hits && grads) {
        swap_grads(pr, l, grads, true);
        for (int half = -1; half <= 1; half++)
            probe_pass(s, l, half, hits);
        swap_grads(pr, l, grads, false);
        n = recurrent_runs(s, l, hits, NULL);
    }
    tg_recurrent_rows *rows = n > 0 ? calloc((size_t)n, sizeof *rows) : NULL;
    bool ok = hits && grads && (n == 0 || rows);
    if (ok && n > 0)
        recurrent_runs(s, l, hits, rows);
    free(hits);
    free(grads);
    if (!ok) {
        free(rows);
        return tg_error_set(TG_ERR_NOMEM, "rnn_stack_recurrent: out of memory");
    }
    pr->rows[l] = rows;
    pr->nrows[l] = n;
    pr->probed[l] = true;
    return TG_OK;
}

int tg_rnn_stack_recurrent(const tg_rnn_stack *s, int l, const tg_recurrent_rows **rows)
{
    if (!s || !rows || !s->probe) {
        tg_error_set(!s || !rows ? TG_ERR_NULL : TG_ERR_ARG, "rnn_stack_recurrent: %s",
                     !s ? "stack is NULL" : !rows ? "rows is NULL"
                                             : "the stack is not initialised");
        return -1;
    }
    if (l < 0 || l >= s->layers) {
        tg_error_set(TG_ERR_ARG, "rnn_stack_recurrent: layer %d of %d", l, s->layers);
        return -1;
    }
    if (!s->probe->probed[l] && probe_layer(s, l) != TG_OK)
        return -1;
    *rows = s->probe->rows[l];
    return s->probe->nrows[l];
}

tg_status tg_stack_probe_note(tg_rnn_stack *s, int l, tg_params *ps, int first)
{
    if (!s->probe && !(s->probe = calloc(1, sizeof *s->probe)))
        return tg_error_set(TG_ERR_NOMEM, "out of memory");
    int n = tg_params_count(ps) - first;
    s->probe->params[l] = malloc((size_t)(n > 0 ? n : 1) * sizeof(tg_tensor *));
    if (!s->probe->params[l])
        return tg_error_set(TG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        s->probe->params[l][i] = tg_params_at(ps, first + i);
    s->probe->nparams[l] = n;
    return TG_OK;
}

void tg_stack_probe_free(struct tg_stack_probe *pr)
{
    for (int l = 0; pr && l < TG_MAX_LAYERS; l++) {
        free(pr->params[l]);
        free(pr->rows[l]);
    }
    free(pr);
}

/* ---- the regularisers in a stack ----------------------------------------------------- */

bool tg_stack_check_regularisers(tg_tape *t, const tg_rnn_stack *s, bool training,
                                 tg_rng *rng)
{
    const char *who = "rnn_stack_step";
    const double rate[4] = { s->dropout, s->var_dropout, s->zoneout, s->weight_drop };
    static const char *const what[4] = { "dropout", "var_dropout", "zoneout", "weight_drop" };
    for (int i = 0; i < 4; i++) {
        if (!(rate[i] >= 0.0 && rate[i] < 1.0)) {
            tg_fail(t, TG_ERR_ARG, who, "%s = %g must be in [0, 1)", what[i], rate[i]);
            return false;
        }
        if (training && rate[i] > 0 && !rng) {
            tg_fail(t, TG_ERR_NULL, who, "%s %g in training needs an rng", what[i], rate[i]);
            return false;
        }
    }
    const char *rows_user = s->weight_drop > 0 ? "weight_drop" : "var_dropout";
    bool need_rows = training && (s->var_dropout > 0 || s->weight_drop > 0);
    for (int l = 0; need_rows && l < s->layers; l++) {
        const tg_recurrent_rows *rows;
        int n = tg_rnn_stack_recurrent(s, l, &rows);
        if (n < 0) {
            tg_fail(t, TG_ERR_NOMEM, who, "%s", tg_last_error());
            return false;
        }
        if (n == 0) {
            tg_fail(t, TG_ERR_ARG, who, "%s: cell type \"%s\" has no recurrent weights in "
                    "layer %d (see tg_rnn_stack_recurrent)", rows_user, s->type->name, l);
            return false;
        }
        for (int i = 0; i < n; i++) {
            if (rows[i].offset == SIZE_MAX) {
                tg_fail(t, TG_ERR_ARG, who, "%s: layer %d's recurrent weight %d is not held "
                        "in cell type \"%s\"'s struct, so it cannot be replaced", rows_user,
                        l, i, s->type->name);
                return false;
            }
        }
    }
    return true;
}

/* w times a mask that is 1 outside rows row0..row0+rows-1 and, in them, scale times an
   inverted-dropout draw of rate p (drawn row-major; p == 0: scale, nothing drawn). */
static tg_tensor *mask_rows(tg_tape *t, tg_tensor *w, int64_t row0, int64_t rows, double p,
                            double scale, tg_rng *rng)
{
    tg_tensor *mask = tg_tape_tensor(t, w->dtype, w->ndim, w->shape);
    if (!mask)
        return NULL;
    int64_t cols = w->ndim == 2 ? w->shape[1] : 1, lo = row0 * cols, hi = lo + rows * cols;
    double keep = scale / (1.0 - p);
    for (int64_t i = 0; i < mask->numel; i++)
        tg_tensor_set(mask, i, i < lo || i >= hi                        ? 1.0
                               : p == 0.0 || tg_rng_uniform(rng) >= p ? keep
                                                                        : 0.0);
    return tg_mul(t, w, mask);
}

/* A tape copy of layer l's cell struct whose recurrent rows (in tg_rnn_stack_recurrent's order) are
   weight-dropped and scaled by 1/(1 - var_dropout): the rows that multiply h carry the
   variational dropout's inverted scaling (see tg_stack_draw_window). NULL with the
   tape's error. */
static const void *window_cell(tg_tape *t, const tg_rnn_stack *s, int l, tg_rng *rng)
{
    size_t size = s->type->size;
    unsigned char *copy = tg_arena_alloc(t, size, false, "rnn_stack_step");
    if (!copy)
        return NULL;
    memcpy(copy, s->cells[l], size);
    const tg_recurrent_rows *rows;
    int n = tg_rnn_stack_recurrent(s, l, &rows);     /* probed by the checks already */
    for (int i = 0; i < n; i++) {
        const tg_recurrent_rows *r = &rows[i];
        tg_tensor *cur, *masked;
        memcpy(&cur, copy + r->offset, sizeof cur);     /* w, or w after an earlier run */
        masked = mask_rows(t, cur, r->row0, r->rows, s->weight_drop,
                           1.0 / (1.0 - s->var_dropout), rng);
        if (!masked)
            return NULL;
        for (size_t off = 0; off + sizeof cur <= size; off += _Alignof(tg_tensor *)) {
            tg_tensor *p;                      /* every place the struct holds it */
            memcpy(&p, copy + off, sizeof p);
            if (p == cur)
                memcpy(copy + off, &masked, sizeof masked);
        }
    }
    return copy;
}

/* A (B,H) mask of 0 with probability p and 1 otherwise, drawn row-major. */
static tg_tensor *keep_mask(tg_tape *t, tg_dtype dtype, int64_t B, int64_t H, double p,
                            tg_rng *rng)
{
    tg_tensor *m = tg_tape_tensor(t, dtype, 2, (const int64_t[]){ B, H });
    for (int64_t i = 0; m && i < m->numel; i++)
        tg_tensor_set(m, i, tg_rng_uniform(rng) >= p ? 1.0 : 0.0);
    return m;
}

const tg_stack_window *tg_stack_draw_window(tg_tape *t, const tg_rnn_stack *s,
                                            const tg_tensor *x, tg_rng *rng)
{
    tg_stack_window *w = tg_arena_alloc(t, sizeof *w, true, "rnn_stack_step");
    if (!w)
        return NULL;
    const int64_t B = x->shape[0], H = s->hidden_size;
    for (int l = 0; l < s->layers; l++) {
        w->cell[l] = s->cells[l];
        if (s->var_dropout > 0) {
            const int64_t in[2] = { B, l == 0 ? s->input_size : H };
            w->input_mask[l] = tg_dropout_mask(t, x->dtype, 2, in, s->var_dropout, rng);
            w->hidden_mask[l] = keep_mask(t, x->dtype, B, H, s->var_dropout, rng);
            if (!w->input_mask[l] || !w->hidden_mask[l])
                return NULL;
        }
        if (!(w->cell[l] = window_cell(t, s, l, rng)))
            return NULL;
    }
    return w;
}
