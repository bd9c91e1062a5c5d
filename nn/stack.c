/* nn/stack.c: stacked recurrent networks of any cell type, and their carried state. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "tensor/tensor_internal.h"

/* Legend: B batch, I input, H hidden, L layers. */

/* Bytes between consecutive layers' cells in the stack's block: the type's size rounded
   up so every cell is aligned for any member. */
static size_t cell_stride(const tg_cell_type *type)
{
    size_t align = _Alignof(max_align_t);
    return (type->size + align - 1) / align * align;
}

tg_status tg_rnn_stack_init(tg_rnn_stack *s, tg_params *ps, const char *prefix,
                            const tg_cell_type *type, int layers, int input_size,
                            int hidden_size, double dropout, const tg_init *init,
                            tg_rng *rng)
{
    const char *who = "rnn_stack_init";
    if (!s || !ps || !prefix || !rng)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !s ? "stack" : !ps ? "params" : !prefix ? "prefix" : "rng");
    if (!type || !type->name || !type->init || !type->step || type->size == 0 ||
        type->nstate < 1 || type->nstate > TG_MAX_CELL_STATE)
        return tg_error_set(TG_ERR_ARG, "%s: %s: %s", who, prefix,
                            type ? "the cell type is not valid (see tg_cell_type_register)"
                                 : "NULL cell type");
    if (layers < 1 || layers > TG_MAX_LAYERS)
        return tg_error_set(TG_ERR_ARG, "%s: %s: %d layers (must be 1..%d)", who, prefix,
                            layers, TG_MAX_LAYERS);
    if (input_size < 1 || hidden_size < 1)
        return tg_error_set(TG_ERR_ARG, "%s: %s: input_size %d, hidden_size %d (both must "
                            "be >= 1)", who, prefix, input_size, hidden_size);
    if (!(dropout >= 0 && dropout < 1))
        return tg_error_set(TG_ERR_ARG, "%s: %s: dropout %g outside [0,1)", who, prefix,
                            dropout);
    memset(s, 0, sizeof *s);
    size_t stride = cell_stride(type);
    unsigned char *block = calloc((size_t)layers, stride);         /* layers cells, zeroed */
    if (!block)
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory for %d %s cells", who, layers,
                            type->name);
    s->type = type;
    s->layers = layers;
    s->input_size = input_size;
    s->hidden_size = hidden_size;
    for (int l = 0; l < layers; l++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%d", prefix, l);
        int in = l == 0 ? input_size : hidden_size;       /* layer 0 reads I, others H */
        int first = tg_params_count(ps);
        s->cells[l] = block + (size_t)l * stride;
        if (type->init(s->cells[l], ps, name, in, hidden_size, init, rng) != TG_OK ||
            tg_stack_probe_note(s, l, ps, first) != TG_OK) {
            tg_rnn_stack_deinit(s);
            return tg_error_wrap("%s", who);
        }
    }
    s->dropout = dropout;
    snprintf(s->scope, sizeof s->scope, "%s.", prefix);
    return TG_OK;
}

void tg_rnn_stack_deinit(tg_rnn_stack *s)
{
    if (!s)
        return;
    free(s->cells[0]);                   /* the block every layer's cell lives in */
    tg_stack_probe_free(s->probe);
    memset(s, 0, sizeof *s);
}

/* Runs layer l's cell on in and prev (each state (B,H); NULL entries already replaced
   by zeros) into next, with the window's masks and weight-dropped cell when win is not
   NULL, then zoneout of every new state tensor. Errors stay on the tape. */
static void layer_step(tg_tape *tape, const tg_rnn_stack *s, int l, tg_tensor *in,
                       tg_tensor *const *prev, const tg_stack_window *win, bool training,
                       tg_rng *rng, tg_tensor **next)
{
    tg_tensor *read[TG_MAX_CELL_STATE];               /* the state the cell reads */
    memcpy(read, prev, sizeof read);
    const void *cell = s->cells[l];
    if (win) {
        if (win->input_mask[l])
            in = tg_mul(tape, in, win->input_mask[l]);             /* (B,I) * (B,I) */
        if (win->hidden_mask[l])
            read[0] = tg_mul(tape, prev[0], win->hidden_mask[l]);  /* (B,H) * (B,H) */
        cell = win->cell[l];
    }
    s->type->step(tape, cell, in, read, next);
    for (int k = 0; s->zoneout > 0 && k < s->type->nstate; k++)
        if (next[k])
            next[k] = tg_zoneout(tape, prev[k], next[k], s->zoneout, training, rng);
}

tg_tensor *tg_rnn_stack_step(tg_tape *tape, const tg_rnn_stack *s, tg_tensor *x,
                             tg_stack_state *state, bool training, tg_rng *rng)
{
    if (!s || !state)
        return tg_fail(tape, TG_ERR_NULL, "rnn_stack_step", "NULL %s", s ? "state" : "stack");
    if (state->layers != s->layers)
        return tg_fail(tape, TG_ERR_SHAPE, "rnn_stack_step", "state has %d layers, stack %d",
                       state->layers, s->layers);
    const tg_cell_type *type = s->type;
    int ns = type ? type->nstate : 0;
    if (!type || (state->nstate != ns && state->nstate != 0))
        return tg_fail(tape, TG_ERR_SHAPE, "rnn_stack_step", "%s",
                       type ? "the state's nstate differs from the cell type's"
                            : "the stack is not initialised");
    if (!tg_stack_check_regularisers(tape, s, training, rng))
        return NULL;
    const tg_stack_window *win = training ? state->window : NULL;
    if (training && !win && x && (s->var_dropout > 0 || s->weight_drop > 0) &&
        !(win = tg_stack_draw_window(tape, s, x, rng)))    /* the window's first step */
        return NULL;

    bool drop = training && s->dropout > 0;
    bool fresh = state->nstate == 0;          /* { .layers = L }: every tensor zeros */
    tg_tensor *next[TG_MAX_LAYERS][TG_MAX_CELL_STATE];  /* the new state, kept until all OK */
    tg_tensor *in = x;                                   /* (B,I), then (B,H) */
    for (int l = 0; l < s->layers; l++) {
        if (l > 0 && drop)
            in = tg_dropout(tape, in, s->dropout, rng);
        tg_tensor *prev[TG_MAX_CELL_STATE] = { NULL };
        for (int k = 0; k < ns; k++) {
            prev[k] = fresh ? NULL : state->tensors[l][k];
            if (x && !prev[k]) {
                const int64_t shape[2] = { x->shape[0], s->hidden_size };  /* (B,H) zeros */
                prev[k] = tg_tape_tensor(tape, x->dtype, 2, shape);
            }
            next[l][k] = NULL;
        }
        tg_tape_push_scope_index(tape, s->scope, l);
        layer_step(tape, s, l, in, prev, win, training, rng, next[l]);
        tg_tape_pop_scope(tape);
        for (int k = 0; k < ns; k++) {
            if (next[l][k])
                continue;
            if (tg_tape_status(tape) == TG_OK)   /* a cell step that failed without a word */
                tg_fail(tape, TG_ERR_ARG, "rnn_stack_step", "cell type \"%s\" gave no state "
                        "%d for layer %d and recorded no error", type->name, k, l);
            return NULL;
        }
        in = next[l][0];
    }
    for (int l = 0; l < s->layers; l++)
        for (int k = 0; k < ns; k++)
            state->tensors[l][k] = next[l][k];
    state->nstate = ns;
    if (training)
        state->window = win;
    return in;
}

tg_stack_state *tg_stack_state_new(const tg_rnn_stack *s, tg_dtype dtype, int64_t batch)
{
    const char *who = "stack_state_new";
    if (!s) {
        tg_error_set(TG_ERR_NULL, "%s: stack is NULL", who);
        return NULL;
    }
    if (!s->type || s->layers < 1 || s->layers > TG_MAX_LAYERS) {
        tg_error_set(TG_ERR_ARG, "%s: the stack has %d layers of %s (not initialised?)", who,
                     s->layers, s->type ? s->type->name : "no type");
        return NULL;
    }
    if (batch < 1 || (dtype != TG_F32 && dtype != TG_F64)) {
        tg_error_set(TG_ERR_ARG, "%s: batch %lld, dtype %d (want batch >= 1, TG_F32 or "
                     "TG_F64)", who, (long long)batch, (int)dtype);
        return NULL;
    }
    tg_stack_state *st = calloc(1, sizeof *st);
    if (!st) {
        tg_error_set(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    st->layers = s->layers;
    st->nstate = s->type->nstate;
    const int64_t shape[2] = { batch, s->hidden_size };        /* (B,H) */
    for (int l = 0; l < st->layers; l++) {
        for (int k = 0; k < st->nstate; k++) {
            st->tensors[l][k] = tg_tensor_new(dtype, 2, shape);
            if (!st->tensors[l][k]) {
                tg_error_wrap("%s", who);
                tg_stack_state_free(st);
                return NULL;
            }
        }
    }
    return st;
}

void tg_stack_state_free(tg_stack_state *st)
{
    if (!st)
        return;
    for (int l = 0; l < TG_MAX_LAYERS; l++)
        for (int k = 0; k < TG_MAX_CELL_STATE; k++)
            tg_tensor_free(st->tensors[l][k]);
    free(st);
}

void tg_stack_state_zero(tg_stack_state *st)
{
    if (!st)
        return;
    for (int l = 0; l < TG_MAX_LAYERS; l++)
        for (int k = 0; k < TG_MAX_CELL_STATE; k++)
            if (st->tensors[l][k])
                tg_tensor_fill(st->tensors[l][k], 0.0);
}

/* dst and src hold tensors of one shape and dtype (or are both NULL). */
static bool same_slot(const tg_tensor *dst, const tg_tensor *src)
{
    if (!dst || !src)
        return !dst && !src;
    return dst->dtype == src->dtype && tg_tensor_same_shape(dst, src);
}

tg_status tg_stack_state_copy(tg_stack_state *dst, const tg_stack_state *src)
{
    const char *who = "stack_state_copy";
    if (!dst || !src)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who, !dst ? "dst" : "src");
    if (dst->layers != src->layers || dst->layers < 1 || dst->layers > TG_MAX_LAYERS ||
        dst->nstate != src->nstate)
        return tg_error_set(TG_ERR_SHAPE, "%s: dst has %d layers of %d tensors, src %d of %d "
                            "(must agree, 1..%d layers)", who, dst->layers, dst->nstate,
                            src->layers, src->nstate, TG_MAX_LAYERS);
    for (int l = 0; l < dst->layers; l++) {    /* check everything before copying anything */
        for (int k = 0; k < TG_MAX_CELL_STATE; k++) {
            const tg_tensor *d = dst->tensors[l][k], *o = src->tensors[l][k];
            if ((k < dst->nstate && !d) || !same_slot(d, o)) {
                char a[64], b[64];
                return tg_error_set(TG_ERR_SHAPE, "%s: layer %d's state %d: dst %s %s, src "
                                    "%s %s do not match", who, l, k, tg_shape_str(d, a, 64),
                                    d && d->dtype == TG_F64 ? "f64" : "f32",
                                    tg_shape_str(o, b, 64),
                                    o && o->dtype == TG_F64 ? "f64" : "f32");
            }
        }
    }
    for (int l = 0; l < dst->layers; l++)
        for (int k = 0; k < dst->nstate; k++)
            if (dst->tensors[l][k] != src->tensors[l][k])
                tg_tensor_copy(dst->tensors[l][k], src->tensors[l][k]);
    return TG_OK;
}
