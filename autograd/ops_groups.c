/* autograd/ops_groups.c: the products of a cell that share an input, run as one product.
 *
 * A cell computes its gates from one input, one line each, as the guide writes them:
 *
 *     forget    = sigmoid(combine @ W_f + b_f)          combine (B, H+I), W_* (H+I, H)
 *     candidate = tanh(combine @ W_c + b_c)
 *     ...
 *
 * Run as written, that is one product of N = H columns per gate, each split over the
 * threads and joined again. While a tape records, this file notes runs of affine and
 * gate products over the same input x. A run of two or more becomes a group of weights
 * (W_f, W_c, ...). When a later product's weight is the first of a group, all the
 * group's products run at once: x @ [W_f | W_c | ...] into a scratch block of the
 * group's columns, W's packed side by side once per tape. The group's products that
 * follow on the same x take their columns from the block (and their bias and activation
 * as before); a product that does not come is only wasted work, and a product of another
 * input runs alone.
 *
 * Groups are learned anew after every reset (the first time step of a char-LM step
 * records the runs, the other 49 use them), so a step never depends on what an earlier
 * one recorded. Each element of the block is summed as the lone product would sum it
 * (every member's width is a whole number of the GEMM's column unit, so its columns fall
 * in the same micro-tiles, summed in an order that depends on K alone; the gathered rows
 * and bias of a one-hot tail are added first, as affine adds them), so the results are
 * the same bits either way; tests/test_ops_matmul.c checks it.
 *
 * Only float products while gradients are recorded, of a tape tensor x (it cannot change)
 * with at least 3 rows, and caller-owned trained weights and biases (they must not change
 * before the reset, as for tg_packed_weight), GROUP_FLOATS weight elements at most.
 * Memory here is optional: without it products run alone.
 */
#include <string.h>

#include "autograd/autograd_internal.h"
#include "tensor/gemm.h"

/* GROUP_FLOATS: the most weight elements a group joins. Larger weights split well over
   threads on their own, and copying and packing them side by side once per step, and
   the wider block, cost more than the joins saved (bench/README.md). */
enum { GROUP_MAX = 8, GROUPS_MAX = 16, GROUP_FLOATS = 1 << 18 };

/* Weights whose products with one input were recorded one after another. */
typedef struct group {
    int n;
    const tg_tensor *w[GROUP_MAX], *b[GROUP_MAX];
    int64_t off[GROUP_MAX + 1];  /* member k's columns: off[k] .. off[k+1]-1 */
    int64_t rows;                /* the weights' leading rows in wcat (x's dense columns) */
    float *wcat, *packed;        /* [W_1 | W_2 | ...] (rows, off[n]), and packed, or NULL */
    float *block;                /* (block_rows, off[n]): the last x @ wcat */
    int64_t block_rows;
} group;

struct tg_groups {
    const tg_tensor *run_x;                        /* the run being recorded */
    int run_n;
    const tg_tensor *run_w[GROUP_MAX], *run_b[GROUP_MAX];
    group groups[GROUPS_MAX];
    int ngroups;
    const tg_tensor *ready_x;                      /* the x ready's block was made from */
    const group *ready;
    int64_t served;                                /* products taken from a block */
};

/* Whether x @ w (+ b) may share: see the file's header. Its columns must be a whole
   number of the GEMM's column unit, which makes them the same bits in a wider product,
   and x at least 3 rows (one- and two-row products take another path). */
static bool may_group(const tg_tensor *x, const tg_tensor *w, const tg_tensor *b)
{
    int64_t unit = tg_sgemm_column_unit();
    bool w_ok = w->dtype == TG_F32 && w->ndim == 2 && !(w->flags & TG_FLAG_TAPE) &&
                (w->flags & TG_FLAG_REQUIRES_GRAD) && unit > 0 && w->shape[1] % unit == 0;
    bool b_ok = !b || (!(b->flags & TG_FLAG_TAPE) && (b->flags & TG_FLAG_REQUIRES_GRAD));
    return x->dtype == TG_F32 && x->ndim == 2 && x->shape[0] >= 3 &&
           (x->flags & TG_FLAG_TAPE) && w_ok && b_ok;
}

/* The run just ended becomes a group unless one starts with its first weight already
   (a weight repeated within the run ends it there). */
static void close_run(tg_groups *g)
{
    int n = 0;
    while (n < g->run_n) {
        bool repeated = false;
        for (int k = 0; k < n; k++)
            repeated |= g->run_w[k] == g->run_w[n];
        if (repeated)
            break;
        n++;
    }
    int64_t floats = 0;
    for (int k = 0; k < n; k++)
        floats += g->run_w[k]->numel;
    if (n < 2 || g->ngroups == GROUPS_MAX || floats > GROUP_FLOATS)
        return;
    for (int i = 0; i < g->ngroups; i++)
        if (g->groups[i].w[0] == g->run_w[0])
            return;
    group *grp = &g->groups[g->ngroups++];
    memset(grp, 0, sizeof *grp);
    grp->n = n;
    for (int k = 0; k < n; k++) {
        grp->w[k] = g->run_w[k];
        grp->b[k] = g->run_b[k];
        grp->off[k + 1] = grp->off[k] + g->run_w[k]->shape[1];
    }
}

/* Notes x @ w (+ b) in the run of products over x. */
static void note(tg_groups *g, const tg_tensor *x, const tg_tensor *w, const tg_tensor *b)
{
    if (g->run_x != x) {
        close_run(g);
        g->run_x = x;
        g->run_n = 0;
    }
    if (g->run_n < GROUP_MAX) {
        g->run_w[g->run_n] = w;
        g->run_b[g->run_n++] = b;
    }
}

/* grp's weights side by side over their leading rows, and packed; false without memory. */
static bool pack_group(tg_tape *tape, group *grp, int64_t rows)
{
    int64_t cols = grp->off[grp->n];
    float *wcat = tg_arena_alloc(tape, (size_t)(rows * cols) * sizeof *wcat, false, NULL);
    if (!wcat)
        return false;
    for (int k = 0; k < grp->n; k++) {
        int64_t n = grp->w[k]->shape[1];
        const float *w = grp->w[k]->data;
        for (int64_t r = 0; r < rows; r++)
            memcpy(wcat + r * cols + grp->off[k], w + r * n, (size_t)n * sizeof *w);
    }
    int64_t size = tg_sgemm_packed_size(rows, cols);
    float *packed = size > 0 ? tg_arena_alloc(tape, (size_t)size * sizeof *packed, false,
                                              NULL) : NULL;
    if (packed)
        tg_sgemm_pack(false, rows, cols, wcat, cols, packed);
    grp->wcat = wcat, grp->packed = packed, grp->rows = rows;
    return true;
}

/* grp's block = x @ [W_1 | W_2 | ...]; for a one-hot tail of x, started from each
   member's gathered rows plus its bias (as affine adds them). false without memory. */
static bool run_group(tg_tape *tape, group *grp, const tg_tensor *x)
{
    const int32_t *hot;
    int64_t M = x->shape[0], K = x->shape[1], dense = tg_dense_cols(x, &hot);
    int64_t cols = grp->off[grp->n];
    if ((!grp->wcat || grp->rows != dense) && !pack_group(tape, grp, dense))
        return false;
    if (grp->block_rows < M) {
        grp->block = tg_arena_alloc(tape, (size_t)(M * cols) * sizeof(float), false, NULL);
        grp->block_rows = grp->block ? M : 0;
        if (!grp->block)
            return false;
    }
    for (int k = 0; hot && k < grp->n; k++)
        tg_product_start(grp->w[k], hot, dense, grp->b[k], M, grp->block + grp->off[k], cols);
    if (dense > 0)
        tg_sgemm_prepacked(false, M, cols, dense, 1.0f, x->data, K, grp->wcat, cols,
                           grp->packed, hot ? 1.0f : 0.0f, grp->block, cols);
    return true;
}

/* The member index of (w, b) in grp, or -1. */
static int member(const group *grp, const tg_tensor *w, const tg_tensor *b)
{
    for (int k = 0; k < grp->n; k++)
        if (grp->w[k] == w && grp->b[k] == b)
            return k;
    return -1;
}

const float *tg_group_product(tg_tape *tape, const tg_tensor *x, const tg_tensor *w,
                              const tg_tensor *b, int64_t *ld)
{
    tg_groups **slot = tg_tape_groups(tape);
    if (!slot || !may_group(x, w, b))
        return NULL;
    if (!*slot && !(*slot = tg_arena_alloc(tape, sizeof **slot, true, NULL)))
        return NULL;
    tg_groups *g = *slot;
    note(g, x, w, b);
    int k = g->ready_x == x ? member(g->ready, w, b) : -1;
    if (k < 0) {
        for (int i = 0; i < g->ngroups && k < 0; i++) {
            if (g->groups[i].w[0] == w && g->groups[i].b[0] == b) {
                if (!run_group(tape, &g->groups[i], x))
                    return NULL;
                g->ready_x = x, g->ready = &g->groups[i], k = 0;
            }
        }
        if (k < 0)
            return NULL;
    }
    g->served++;
    *ld = g->ready->off[g->ready->n];
    return g->ready->block + g->ready->off[k];
}

int64_t tg_tape_grouped_products(tg_tape *tape)
{
    tg_groups **slot = tg_tape_groups(tape);
    return slot && *slot ? (*slot)->served : 0;
}
