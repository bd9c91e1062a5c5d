/* examples/plugin/mycell.c: a charlm plug-in: a recurrent cell of one's own, composed from
 * tapegrad's ops, registered as the cell type "mycell" when the shared object is loaded.
 *
 * The cell is a tanh RNN with a learned leak (a gate deciding, per unit, how much of the
 * candidate replaces the old state):
 *
 *     combine   = concat(h, x)
 *     gate      = sigmoid(gate(combine))          (B,H)
 *     candidate = tanh(candidate(combine))        (B,H)
 *     h'        = h + gate * (candidate - h)
 *
 * Build it against an installed tapegrad and train a character model with it:
 *
 *     cc -shared -fPIC -O2 mycell.c $(pkg-config --cflags --libs tapegrad) -o mycell.so
 *     charlm train --plugin ./mycell.so --cell mycell --save my.ckpt
 *     charlm viz --plugin ./mycell.so --model my.ckpt --text some.txt --out gates.html
 *
 * Everything charlm does with a cell (stacks, checkpoints, sampling, evaluation, gradient
 * checking, the gate viewer, which shows "gate", "candidate" and "hidden") works for it.
 */
#include <stdio.h>

#include "tapegrad.h"

/* Legend: B batch, I input, H hidden. */

/* The cell struct: what init fills and step reads. Its parameters live in the model's
   tg_params, named "<prefix>.gate.w" (H+I, H), "<prefix>.gate.b" (H) and the same for
   "candidate"; the first H rows of each weight multiply h, the next I rows x. */
typedef struct mycell {
    int input_size, hidden_size;
    tg_linear gate, candidate;          /* each (H+I) -> H */
} mycell;

static tg_status mycell_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                             int hidden_size, const tg_init *init, tg_rng *rng)
{
    mycell *c = cell;
    char name[64];
    c->input_size = input_size;
    c->hidden_size = hidden_size;
    snprintf(name, sizeof name, "%s.gate", prefix);
    tg_status st = tg_linear_init(&c->gate, ps, name, hidden_size + input_size, hidden_size,
                                  hidden_size, init, rng);
    if (st != TG_OK)
        return st;
    snprintf(name, sizeof name, "%s.candidate", prefix);
    return tg_linear_init(&c->candidate, ps, name, hidden_size + input_size, hidden_size,
                          hidden_size, init, rng);
}

/* x (B,I), state[0] = h (B,H) -> next[0] = h' (B,H), owned by the tape. */
static void mycell_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                        tg_tensor **next)
{
    const mycell *c = cell;
    tg_tensor *h = state[0];
    if (x && h && (x->shape[1] != c->input_size || h->shape[1] != c->hidden_size)) {
        next[0] = tg_tape_fail(t, TG_ERR_SHAPE, "mycell: x has %lld columns, h %lld "
                               "(the cell reads %d and has %d units)",
                               (long long)x->shape[1], (long long)h->shape[1],
                               c->input_size, c->hidden_size);
        return;
    }
    tg_tensor *combine   = tg_concat(t, h, x, 1);                              /* (B,H+I) */
    tg_tensor *gate      = tg_gate(t, tg_sigmoid, &c->gate, combine, "gate");
    tg_tensor *candidate = tg_gate(t, tg_tanh, &c->candidate, combine, "candidate");
    tg_tensor *hidden    = tg_add(t, h, tg_mul(t, gate, tg_sub(t, candidate, h)));
    next[0] = tg_name(t, hidden, "hidden");
}

static const tg_cell_type mycell_type = {
    .name = "mycell",
    .nstate = 1,                        /* h */
    .size = sizeof(mycell),
    .init = mycell_init,
    .step = mycell_step,
};

/* Runs when the shared object is loaded (charlm --plugin). A refused registration (the
   name is taken) leaves its reason in tg_last_error(), which charlm reports. */
__attribute__((constructor)) static void mycell_register(void)
{
    tg_cell_type_register(&mycell_type);
}
