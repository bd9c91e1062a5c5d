/* autograd/ops_custom.c: tg_custom, a user-defined op with its own forward and backward. */
#include <string.h>

#include "autograd/autograd_internal.h"

/* ---- custom ------------------------------------------------------------------------------
 * forward:   the user's forward writes out->data (zeroed first) from the inputs' data
 * backward:  the user's backward ADDS into din[i] (headers over each input's gradient
 *            buffer; NULL when input i keeps no gradient) from dout (a header over out's
 *            gradient). The tape hands this op only valid gradient buffers: it never asks
 *            an input's buffer to be overwritten (tg_op.overwrites 0), so a stale one is
 *            zeroed before the user's backward runs, and queued weight gradients and
 *            recycled buffers stay the tape's business.
 * The node's op is a tg_op made for it (in the arena) so messages carry the user's name.
 */
typedef struct custom_aux {
    const tg_custom_op *op;
    void *ctx;
} custom_aux;

static void custom_forward(tg_node *n)
{
    const custom_aux *a = n->aux;
    a->op->forward(a->ctx, (const tg_tensor *const *)n->in, n->nin, n->out);
}

/* A header of t's dtype and shape over buf (no gradient, no flags). */
static void header_over(tg_tensor *h, const tg_tensor *t, void *buf)
{
    *h = *t;
    h->data = buf;
    h->grad = NULL;
    h->flags = 0;
}

static void custom_backward(tg_node *n)
{
    const custom_aux *a = n->aux;
    tg_tensor dout, din_store[TG_CUSTOM_MAX_IN], *din[TG_CUSTOM_MAX_IN];
    header_over(&dout, n->out, n->out->grad);
    for (int i = 0; i < n->nin; i++) {
        din[i] = NULL;
        if (n->in[i]->grad) {
            header_over(&din_store[i], n->in[i], n->in[i]->grad);
            din[i] = &din_store[i];
        }
    }
    a->op->backward(a->ctx, (const tg_tensor *const *)n->in, n->nin, n->out, &dout, din);
}

/* Checks the op and the requested shape; false with the error recorded under name. */
static bool custom_args_ok(tg_tape *tape, const char *name, const tg_custom_op *op,
                           tg_tensor *const *in, int nin, int ndim, const int64_t *shape)
{
    if (!op || !op->forward || !op->backward) {
        tg_fail(tape, TG_ERR_NULL, name, "%s is NULL",
                !op ? "op" : !op->forward ? "op->forward" : "op->backward");
        return false;
    }
    if (nin < 1 || nin > TG_CUSTOM_MAX_IN) {
        tg_fail(tape, TG_ERR_ARG, name, "%d inputs: needs 1 to %d", nin, TG_CUSTOM_MAX_IN);
        return false;
    }
    if (!in || !shape) {
        tg_fail(tape, TG_ERR_NULL, name, "%s is NULL", !in ? "the input array" : "shape");
        return false;
    }
    bool ok = ndim >= 1 && ndim <= TG_MAX_DIMS;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] >= 1;
    if (!ok) {
        tg_fail(tape, TG_ERR_SHAPE, name, "result shape must have 1 to %d dims, each >= 1 "
                "(ndim %d)", TG_MAX_DIMS, ndim);
        return false;
    }
    return true;
}

tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, tg_tensor *const *in, int nin,
                     int ndim, const int64_t *shape, void *ctx)
{
    if (!tape || tg_tape_status(tape) != TG_OK)
        return NULL;
    const char *name = op && op->name ? op->name : "custom";
    if (!custom_args_ok(tape, name, op, in, nin, ndim, shape))
        return NULL;
    tg_op *node_op = tg_arena_alloc(tape, sizeof *node_op, false, name);
    custom_aux *a = node_op ? tg_arena_alloc(tape, sizeof *a, false, name) : NULL;
    if (!a)
        return NULL;
    *node_op = (tg_op){ name, custom_forward, custom_backward, 0 };
    *a = (custom_aux){ op, ctx };
    tg_node *n = tg_node_begin(tape, node_op, nin, in);
    if (!n)
        return NULL;
    n->aux = a;
    if (!tg_node_output(n, ndim, shape, true))
        return NULL;
    return tg_node_finish(n);
}
