/* nn/stack.c: stacked recurrent networks of any cell kind, and their carried state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden, L layers. */

static const char *const kind_names[] = { "rnn", "lstm", "gru" };

const char *tg_cell_kind_name(tg_cell_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

int tg_cell_kind_parse(const char *name)
{
    for (int k = 0; name && k < 3; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

tg_status tg_rnn_stack_init(tg_rnn_stack *s, tg_params *ps, const char *prefix,
                            tg_cell_kind kind, int layers, int input_size, int hidden_size,
                            double dropout, const tg_init *init, tg_rng *rng)
{
    const char *who = "rnn_stack_init";
    if (!s || !ps || !prefix || !rng)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !s ? "stack" : !ps ? "params" : !prefix ? "prefix" : "rng");
    if ((unsigned)kind > TG_CELL_GRU)
        return tg_error_set(TG_ERR_ARG, "%s: %s: unknown cell kind %d", who, prefix, (int)kind);
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
    for (int l = 0; l < layers; l++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%d", prefix, l);
        int in = l == 0 ? input_size : hidden_size;       /* layer 0 reads I, others H */
        tg_cell *c = &s->cells[l];
        tg_status st = TG_OK;
        c->kind = kind;
        switch (kind) {
        case TG_CELL_RNN:
            st = tg_rnn_cell_init(&c->u.rnn, ps, name, in, hidden_size, init, rng);
            break;
        case TG_CELL_LSTM:
            st = tg_lstm_cell_init(&c->u.lstm, ps, name, in, hidden_size, init, rng);
            break;
        case TG_CELL_GRU:
            st = tg_gru_cell_init(&c->u.gru, ps, name, in, hidden_size, init, rng);
            break;
        }
        if (st != TG_OK)
            return tg_error_wrap("%s", who);
    }
    s->kind = kind;
    s->layers = layers;
    s->input_size = input_size;
    s->hidden_size = hidden_size;
    s->dropout = dropout;
    snprintf(s->scope, sizeof s->scope, "%s.", prefix);
    return TG_OK;
}

tg_tensor *tg_rnn_stack_step(tg_tape *tape, const tg_rnn_stack *s, tg_tensor *x,
                             tg_stack_state *state, bool training, tg_rng *rng)
{
    if (!s || !state)
        return tg_fail(tape, TG_ERR_NULL, "rnn_stack_step", "NULL %s", s ? "state" : "stack");
    if (state->layers != s->layers)
        return tg_fail(tape, TG_ERR_SHAPE, "rnn_stack_step", "state has %d layers, stack %d",
                       state->layers, s->layers);
    bool drop = training && s->dropout > 0;
    if (drop && !rng)
        return tg_fail(tape, TG_ERR_NULL, "rnn_stack_step", "dropout %g needs an rng",
                       s->dropout);

    tg_tensor *h[TG_MAX_LAYERS], *c[TG_MAX_LAYERS];   /* the new state, kept until all OK */
    tg_tensor *in = x;                                 /* (B,I), then (B,H) */
    for (int l = 0; l < s->layers; l++) {
        const tg_cell *cell = &s->cells[l];
        if (l > 0 && drop)
            in = tg_dropout(tape, in, s->dropout, rng);
        c[l] = NULL;
        tg_tensor *h_prev = state->h[l], *c_prev = state->c[l];
        if (x && (!h_prev || (cell->kind == TG_CELL_LSTM && !c_prev))) {
            const int64_t shape[2] = { x->shape[0], s->hidden_size };    /* (B,H) zeros */
            h_prev = h_prev ? h_prev : tg_tape_tensor(tape, x->dtype, 2, shape);
            c_prev = c_prev ? c_prev : tg_tape_tensor(tape, x->dtype, 2, shape);
        }
        tg_tape_push_scope_index(tape, s->scope, l);
        switch (cell->kind) {
        case TG_CELL_RNN:
            h[l] = tg_rnn_cell_step(tape, &cell->u.rnn, in, h_prev);
            break;
        case TG_CELL_LSTM: {
            tg_lstm_state ls = tg_lstm_cell_step(tape, &cell->u.lstm, in,
                                                 (tg_lstm_state){ h_prev, c_prev });
            h[l] = ls.h;
            c[l] = ls.c;
            break;
        }
        case TG_CELL_GRU:
            h[l] = tg_gru_cell_step(tape, &cell->u.gru, in, h_prev);
            break;
        default:
            h[l] = tg_fail(tape, TG_ERR_ARG, "rnn_stack_step", "unknown cell kind %d",
                           (int)cell->kind);
        }
        tg_tape_pop_scope(tape);
        if (!h[l])
            return NULL;
        in = h[l];
    }
    for (int l = 0; l < s->layers; l++) {
        state->h[l] = h[l];
        state->c[l] = c[l];
    }
    return in;
}

tg_stack_state *tg_stack_state_new(const tg_rnn_stack *s, tg_dtype dtype, int64_t batch)
{
    const char *who = "stack_state_new";
    if (!s) {
        tg_error_set(TG_ERR_NULL, "%s: stack is NULL", who);
        return NULL;
    }
    if (s->layers < 1 || s->layers > TG_MAX_LAYERS) {
        tg_error_set(TG_ERR_ARG, "%s: the stack has %d layers (not initialised?)", who,
                     s->layers);
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
    const int64_t shape[2] = { batch, s->hidden_size };        /* (B,H) */
    for (int l = 0; l < s->layers; l++) {
        st->h[l] = tg_tensor_new(dtype, 2, shape);
        if (!st->h[l])
            goto fail;
        if (s->cells[l].kind == TG_CELL_LSTM && !(st->c[l] = tg_tensor_new(dtype, 2, shape)))
            goto fail;
    }
    return st;
fail:
    tg_error_wrap("%s", who);
    tg_stack_state_free(st);
    return NULL;
}

void tg_stack_state_free(tg_stack_state *st)
{
    if (!st)
        return;
    for (int l = 0; l < st->layers && l < TG_MAX_LAYERS; l++) {
        tg_tensor_free(st->h[l]);
        tg_tensor_free(st->c[l]);
    }
    free(st);
}

void tg_stack_state_zero(tg_stack_state *st)
{
    if (!st)
        return;
    for (int l = 0; l < st->layers && l < TG_MAX_LAYERS; l++) {
        if (st->h[l])
            tg_tensor_fill(st->h[l], 0.0);
        if (st->c[l])
            tg_tensor_fill(st->c[l], 0.0);
    }
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
    if (dst->layers != src->layers || dst->layers < 1 || dst->layers > TG_MAX_LAYERS)
        return tg_error_set(TG_ERR_SHAPE, "%s: dst has %d layers, src %d (must agree, "
                            "1..%d)", who, dst->layers, src->layers, TG_MAX_LAYERS);
    for (int l = 0; l < dst->layers; l++) {    /* check everything before copying anything */
        if (!dst->h[l] || !same_slot(dst->h[l], src->h[l]) ||
            !same_slot(dst->c[l], src->c[l])) {
            char a[64], b[64];
            bool h_bad = !dst->h[l] || !same_slot(dst->h[l], src->h[l]);
            const tg_tensor *d = h_bad ? dst->h[l] : dst->c[l], *o = h_bad ? src->h[l]
                                                                          : src->c[l];
            return tg_error_set(TG_ERR_SHAPE, "%s: layer %d's %s: dst %s %s, src %s %s do "
                                "not match", who, l, h_bad ? "h" : "c", tg_shape_str(d, a, 64),
                                d && d->dtype == TG_F64 ? "f64" : "f32", tg_shape_str(o, b, 64),
                                o && o->dtype == TG_F64 ? "f64" : "f32");
        }
    }
    for (int l = 0; l < dst->layers; l++) {
        if (dst->h[l] != src->h[l])
            tg_tensor_copy(dst->h[l], src->h[l]);
        if (dst->c[l] && dst->c[l] != src->c[l])
            tg_tensor_copy(dst->c[l], src->c[l]);
    }
    return TG_OK;
}
