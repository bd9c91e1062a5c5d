/* nn/bidir.c: bidirectional recurrent layers over any cell type, as torch's
 * bidirectional=True computes them.
 *
 * Layer l runs one cell forward in time and another backward, each from a zero state;
 * its output at step t is concat(forward h_t, backward h_t) (B,2H), which layer l+1 reads
 * as its input. The sequence is a list of T per-step tensors.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, T time, I input, H hidden, L layers. */

tg_status tg_bidir_rnn_init(tg_bidir_rnn *b, tg_params *ps, const char *prefix,
                            const tg_cell_type *type, int layers, int input_size,
                            int hidden_size, const tg_init *init, tg_rng *rng)
{
    if (!b || !ps || !prefix || !type || !type->init || !type->step)
        return tg_error_set(TG_ERR_NULL, "bidir_rnn_init: NULL argument");
    memset(b, 0, sizeof *b);
    if (layers < 1 || layers > TG_MAX_LAYERS || input_size < 1 || hidden_size < 1 ||
        type->nstate < 1 || type->nstate > TG_MAX_CELL_STATE || type->size < 1)
        return tg_error_set(TG_ERR_ARG, "bidir_rnn_init: %d layers, input %d, hidden %d, "
                            "%d states of type %s: want 1..%d layers, sizes >= 1, 1..%d "
                            "states", layers, input_size, hidden_size, type->nstate,
                            type->name ? type->name : "?", TG_MAX_LAYERS, TG_MAX_CELL_STATE);
    b->type = type;
    for (int l = 0; l < layers; l++) {
        for (int d = 0; d < 2; d++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%d.%s", prefix, l, d ? "bwd" : "fwd");
            int in = l == 0 ? input_size : 2 * hidden_size;    /* layer 0 reads I, others 2H */
            b->cell[l][d] = calloc(1, type->size);
            if (!b->cell[l][d]) {
                tg_bidir_rnn_deinit(b);
                return tg_error_set(TG_ERR_NOMEM, "bidir_rnn_init: out of memory");
            }
            b->layers = l + 1;
            tg_status st = type->init(b->cell[l][d], ps, name, in, hidden_size, init, rng);
            if (st != TG_OK) {
                tg_bidir_rnn_deinit(b);
                return tg_error_set(st, "bidir_rnn_init: %s cell %s: %s", type->name, name,
                                    tg_status_str(st));
            }
        }
    }
    b->layers = layers;
    b->input_size = input_size;
    b->hidden_size = hidden_size;
    return TG_OK;
}

void tg_bidir_rnn_deinit(tg_bidir_rnn *b)
{
    if (!b)
        return;
    for (int l = 0; l < TG_MAX_LAYERS; l++)
        for (int d = 0; d < 2; d++) {
            free(b->cell[l][d]);
            b->cell[l][d] = NULL;
        }
    b->layers = 0;
}

/* Runs one cell over in[0..T-1] (each (B,in)) from a zero state, backward in time when
   reverse, writing each step's h (B,H) to h[t]. False when the tape holds an error. */
static bool run_direction(tg_tape *t, const tg_cell_type *type, const void *cell,
                          tg_tensor *const *in, int64_t T, bool reverse, int64_t H,
                          tg_tensor **h)
{
    tg_tensor *state[TG_MAX_CELL_STATE], *next[TG_MAX_CELL_STATE];
    const int64_t shape[2] = { in[0]->shape[0], H };                     /* (B,H) zeros */
    for (int k = 0; k < type->nstate; k++)
        state[k] = tg_tape_tensor(t, in[0]->dtype, 2, shape);
    for (int64_t s = 0; s < T; s++) {
        int64_t step = reverse ? T - 1 - s : s;
        type->step(t, cell, in[step], state, next);
        if (!next[0])
            return false;
        h[step] = next[0];
        memcpy(state, next, (size_t)type->nstate * sizeof *state);
    }
    return true;
}

tg_status tg_bidir_rnn_forward(tg_tape *t, const tg_bidir_rnn *b, tg_tensor *const *xs,
                               int64_t T, tg_tensor **out)
{
    if (!b || !xs || !out || !b->type) {
        tg_fail(t, TG_ERR_NULL, "bidir_rnn", "NULL %s", !b || !b->type ? "network" : !xs
                ? "inputs" : "outputs");
        return tg_tape_status(t);
    }
    for (int64_t s = 0; s < T; s++)
        out[s] = NULL;
    if (T < 1 || !xs[0]) {
        tg_fail(t, T < 1 ? TG_ERR_ARG : TG_ERR_NULL, "bidir_rnn", T < 1 ? "%lld steps"
                : "NULL input at step 0 of %lld", (long long)T);
        return tg_tape_status(t);
    }
    size_t bytes = (size_t)T * sizeof(tg_tensor *);
    tg_tensor **fwd = tg_arena_alloc(t, 3 * bytes, false, "bidir_rnn");
    if (!fwd)
        return tg_tape_status(t);
    tg_tensor **bwd = fwd + T, **layer_out = bwd + T;          /* T pointers each */
    tg_tensor *const *in = xs;                                  /* (B,I), then (B,2H) */
    for (int l = 0; l < b->layers; l++) {
        if (!run_direction(t, b->type, b->cell[l][0], in, T, false, b->hidden_size, fwd) ||
            !run_direction(t, b->type, b->cell[l][1], in, T, true, b->hidden_size, bwd))
            return tg_tape_status(t);
        for (int64_t s = 0; s < T; s++)
            layer_out[s] = tg_concat(t, fwd[s], bwd[s], 1);                      /* (B,2H) */
        in = layer_out;
    }
    if (tg_tape_status(t) != TG_OK)
        return tg_tape_status(t);
    memcpy(out, layer_out, bytes);
    return TG_OK;
}
