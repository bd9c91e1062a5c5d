/* autograd/tape.c: the tape: an arena of growable chunks, the node list, errors, backward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd_internal.h"
#include "tensor/gemm.h"

enum { ALIGN = 64, CHUNK_MIN = 1 << 20, MSG_LEN = 512, MAX_SCOPES = 8 };

/* One block of arena memory; chunks are kept across resets and reused in order. */
typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *base;    /* ALIGN-aligned start of the usable bytes */
} chunk;

/* A queued weight gradient dW += X^T @ dY (see tg_defer_weight_grad). */
typedef struct wgrad {
    tg_tensor    *w, *b;         /* b: the bias whose db += column sums of dY, or NULL */
    const void   *x, *dy;        /* (rows, w->shape[0]) and (rows, w->shape[1]) */
    int64_t       rows;
    int64_t       dense;         /* x's columns before its one-hot tail, */
    const int32_t *hot;          /* and the tail's 1s (tg_dense_cols)    */
    bool          done;
    struct wgrad *next;          /* queued after this one */
} wgrad;

/* A packed copy of op(W) for the life of the tape (see tg_packed_weight). */
typedef struct wpack {
    const tg_tensor *w;
    bool             tb;
    int64_t          rows;      /* W's leading rows packed */
    const float     *packed;
    struct wpack    *next;
} wpack;

/* One pushed scope: name, followed by index in decimal when index >= 0. Only the pointer
   is kept: pushing costs no formatting and no allocation. */
typedef struct scope {
    const char *name;
    int64_t     index;
} scope;

struct tg_tape {
    chunk   *first, *cur;
    wgrad   *wq, *wq_last;  /* queued weight gradients, oldest first */
    wpack   *packs;         /* packed weights */
    tg_groups *groups;      /* products that share an input (ops_groups.c), in the arena */
    bool     no_groups;     /* tests: every product runs alone */
    tg_node *last;          /* newest recorded node */
    bool     grad_enabled;
    tg_status status;
    char     msg[MSG_LEN];
    size_t   used, peak, limit, reserved;
    int64_t  mallocs;
    tg_observer_fn observer;
    void    *observer_user;
    uint64_t epoch;                 /* resets so far: stamped on every tape tensor */
    scope    scopes[MAX_SCOPES];    /* the innermost MAX_SCOPES are not kept beyond these */
    int      nscopes;               /* pushed and not popped (may exceed MAX_SCOPES) */
};

tg_tape *tg_tape_new(void)
{
    tg_tape *t = calloc(1, sizeof *t);
    if (t)
        t->grad_enabled = true;
    return t;
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    tape->cur = tape->first;
    if (tape->cur)
        tape->cur->used = 0;
    tape->last = NULL;
    tape->wq = tape->wq_last = NULL;
    tape->packs = NULL;
    tape->groups = NULL;
    tape->used = 0;
    tape->epoch++;
    tape->status = TG_OK;
    tape->msg[0] = '\0';
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    for (chunk *c = tape->first, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(tape);
}

tg_status tg_tape_status(const tg_tape *tape)
{
    return tape ? tape->status : TG_ERR_NULL;
}

const char *tg_tape_errmsg(const tg_tape *tape)
{
    return tape ? tape->msg : "NULL tape";
}

void tg_tape_set_grad_enabled(tg_tape *tape, bool enabled)
{
    if (tape)
        tape->grad_enabled = enabled;
}

bool tg_tape_grad_enabled(const tg_tape *tape)
{
    return tape && tape->grad_enabled;
}

size_t tg_tape_bytes_used(const tg_tape *tape)
{
    return tape ? tape->used : 0;
}

size_t tg_tape_bytes_peak(const tg_tape *tape)
{
    return tape ? tape->peak : 0;
}

int64_t tg_tape_mallocs(const tg_tape *tape)
{
    return tape ? tape->mallocs : 0;
}

void tg_tape_set_memory_limit(tg_tape *tape, size_t limit)
{
    if (tape)
        tape->limit = limit;
}

void tg_tape_set_observer(tg_tape *tape, tg_observer_fn fn, void *user)
{
    if (tape) {
        tape->observer = fn;
        tape->observer_user = user;
    }
}

tg_tensor *tg_name(tg_tape *tape, tg_tensor *t, const char *name)
{
    if (tape && t && tape->observer)
        tape->observer(tape->observer_user, name, t);
    return t;
}

void tg_tape_push_scope_index(tg_tape *tape, const char *name, int64_t index)
{
    if (!tape)
        return;
    if (tape->nscopes < MAX_SCOPES)
        tape->scopes[tape->nscopes] = (scope){ .name = name, .index = index };
    tape->nscopes++;
}

void tg_tape_push_scope(tg_tape *tape, const char *name)
{
    tg_tape_push_scope_index(tape, name, -1);
}

void tg_tape_pop_scope(tg_tape *tape)
{
    if (tape && tape->nscopes > 0)
        tape->nscopes--;
}

/* Writes "outer/inner: " for the pushed scopes into msg (nothing when none is pushed);
   returns the length written. */
static size_t format_scopes(const tg_tape *tape, char *msg, size_t cap)
{
    size_t n = 0;
    int kept = tape->nscopes < MAX_SCOPES ? tape->nscopes : MAX_SCOPES;
    for (int i = 0; i < kept && n < cap; i++) {
        const scope *sc = &tape->scopes[i];
        const char *name = sc->name ? sc->name : "";
        int w = sc->index >= 0
                    ? snprintf(msg + n, cap - n, "%s%s%lld", i ? "/" : "", name,
                               (long long)sc->index)
                    : snprintf(msg + n, cap - n, "%s%s", i ? "/" : "", name);
        n += w > 0 ? (size_t)w : 0;
    }
    if (tape->nscopes > MAX_SCOPES && n < cap)
        n += (size_t)snprintf(msg + n, cap - n, "/...");
    if (kept > 0 && n < cap)
        n += (size_t)snprintf(msg + n, cap - n, ": ");
    return n < cap ? n : cap - 1;
}

/* Records the first error: "<scopes>: <op>: <message>" (op NULL: no op part). */
static void record_error(tg_tape *tape, tg_status status, const char *op, const char *fmt,
                         va_list ap)
{
    if (!tape || tape->status != TG_OK)
        return;
    tape->status = status;
    size_t n = format_scopes(tape, tape->msg, MSG_LEN);
    if (op) {
        int w = snprintf(tape->msg + n, MSG_LEN - n, "%s: ", op);
        n += w > 0 ? (size_t)w : 0;
        if (n >= MSG_LEN)
            n = MSG_LEN - 1;
    }
    vsnprintf(tape->msg + n, MSG_LEN - n, fmt, ap);
}

tg_tensor *tg_fail(tg_tape *tape, tg_status status, const char *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_error(tape, status, op, fmt, ap);
    va_end(ap);
    return NULL;
}

tg_tensor *tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
{
    if (status == TG_OK)
        status = TG_ERR_ARG;
    va_list ap;
    va_start(ap, fmt);
    record_error(tape, status, NULL, fmt ? fmt : "", ap);
    va_end(ap);
    return NULL;
}

const char *tg_msg_shape(const tg_tensor *t)
{
    static _Thread_local char bufs[4][64];
    static _Thread_local int next;
    char *b = bufs[next++ & 3];
    return tg_shape_str(t, b, 64);
}

/* ---- arena -------------------------------------------------------------------
 * Bump allocation in the current chunk; when it is full, move to the next kept chunk
 * (or malloc a new one after it). Reset rewinds to the first chunk: O(1), no free.
 */
static chunk *chunk_new(tg_tape *tape, size_t need)
{
    size_t size = need + ALIGN > CHUNK_MIN ? need + ALIGN : CHUNK_MIN;
    if (tape->limit && tape->reserved + size > tape->limit)
        return NULL;
    chunk *c = malloc(sizeof *c + size);
    if (!c)
        return NULL;
    tape->mallocs++;
    tape->reserved += size;
    uintptr_t p = (uintptr_t)(c + 1);
    c->base = (unsigned char *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    c->size = size - (size_t)(c->base - (unsigned char *)(c + 1));
    c->used = 0;
    c->next = NULL;
    return c;
}

/* bytes rounded up to ALIGN (0 when that overflows) */
static size_t aligned(size_t bytes)
{
    size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return need < bytes ? 0 : need;
}

void *tg_arena_alloc(tg_tape *tape, size_t bytes, bool zero, const char *op)
{
    size_t need = aligned(bytes);
    if (need < bytes) {
        if (op)
            tg_fail(tape, TG_ERR_NOMEM, op, "allocation of %zu bytes overflows", bytes);
        return NULL;
    }
    chunk *c = tape->cur;
    while (!c || c->size - c->used < need) {
        if (c && c->next && c->next->size >= need) {
            c = c->next;            /* a kept chunk from an earlier step */
            c->used = 0;
            continue;
        }
        chunk *fresh = chunk_new(tape, need);
        if (!fresh) {
            if (op)
                tg_fail(tape, TG_ERR_NOMEM, op,
                        "out of memory allocating %zu bytes on the tape", bytes);
            return NULL;
        }
        if (!c) {
            fresh->next = tape->first;
            tape->first = fresh;
        } else {
            fresh->next = c->next;
            c->next = fresh;
        }
        c = fresh;
    }
    tape->cur = c;
    void *p = c->base + c->used;
    c->used += need;
    tape->used += need;
    if (tape->used > tape->peak)
        tape->peak = tape->used;
    if (zero)
        memset(p, 0, bytes);
    return p;
}

/* A stamped tape tensor header (zeroed) for op, or NULL (error recorded). */
static tg_tensor *new_header(tg_tape *tape, const char *op)
{
    tg_tape_owned *tt = tg_arena_alloc(tape, sizeof *tt, true, op);
    if (!tt)
        return NULL;
    tt->tape = tape;
    tt->epoch = tape->epoch;
    return &tt->t;
}

bool tg_tape_owns(const tg_tape *tape, const tg_tensor *t)
{
    const tg_tape_owned *tt = (const tg_tape_owned *)(const void *)t;
    return tt->tape == tape && tt->epoch == tape->epoch;
}

/* Records why operand i (a tape tensor not made by tape since its reset) cannot be used. */
static void fail_foreign(tg_tape *tape, const char *op, const char *what,
                         const tg_tensor *t)
{
    const tg_tape_owned *tt = (const tg_tape_owned *)(const void *)t;
    if (tt->tape == tape)
        tg_fail(tape, TG_ERR_ARG, op, "%s was recorded before the tape's last reset (a "
                "tape's tensors die at tg_tape_reset: copy out what must outlive a step)",
                what);
    else
        tg_fail(tape, TG_ERR_ARG, op, "%s belongs to another tape (or to memory reused "
                "after a reset)", what);
}

tg_tensor *tg_tape_tensor_for(tg_tape *tape, const char *op, tg_dtype dtype, int ndim,
                              const int64_t *shape)
{
    if (!tape || tape->status != TG_OK)
        return NULL;
    int64_t numel;
    size_t bytes;
    tg_status st = tg_shape_check(dtype, ndim, shape, &numel, &bytes);
    if (st != TG_OK)
        return tg_fail(tape, st, op, "invalid dtype, ndim %d or shape", ndim);
    tg_tensor *t = new_header(tape, op);
    void *data = t ? tg_arena_alloc(tape, bytes, true, op) : NULL;
    if (!data)
        return NULL;
    tg_tensor_set_shape(t, dtype, ndim, shape, numel);
    t->data = data;
    t->flags = TG_FLAG_TAPE;
    return t;
}

tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tg_tape_tensor_for(tape, "tape_tensor", dtype, ndim, shape);
}

/* ---- recording ------------------------------------------------------------------- */
tg_node *tg_node_begin(tg_tape *tape, const tg_op *op, int nin, tg_tensor *const *in)
{
    if (!tape || tape->status != TG_OK)
        return NULL;
    for (int i = 0; i < nin; i++) {
        if (!in[i]) {
            tg_fail(tape, TG_ERR_NULL, op->name, "operand %d is NULL", i + 1);
            return NULL;
        }
        if ((in[i]->flags & TG_FLAG_TAPE) && !tg_tape_owns(tape, in[i])) {
            char what[32];
            snprintf(what, sizeof what, "operand %d", i + 1);
            fail_foreign(tape, op->name, what, in[i]);
            return NULL;
        }
        if (in[i]->dtype != in[0]->dtype) {
            tg_fail(tape, TG_ERR_DTYPE, op->name, "operand %d is %s but operand 1 is %s",
                    i + 1, in[i]->dtype == TG_F64 ? "f64" : "f32",
                    in[0]->dtype == TG_F64 ? "f64" : "f32");
            return NULL;
        }
    }
    tg_node *n = tg_arena_alloc(tape, sizeof *n, true, op->name);
    if (!n)
        return NULL;
    n->op = op;
    n->tape = tape;
    n->nin = nin;
    n->in = n->in_inline;
    if (nin > TG_NODE_INLINE_IN) {
        n->in = tg_arena_alloc(tape, (size_t)nin * sizeof *n->in, false, op->name);
        if (!n->in)
            return NULL;
    }
    for (int i = 0; i < nin; i++)
        n->in[i] = in[i];
    return n;
}

bool tg_node_output(tg_node *n, int ndim, const int64_t *shape, bool zero)
{
    tg_tape *tape = n->tape;
    int64_t numel;
    size_t bytes;
    tg_status st = tg_shape_check(n->in[0]->dtype, ndim, shape, &numel, &bytes);
    if (st != TG_OK) {
        tg_fail(tape, st, n->op->name, "result shape is invalid or too large");
        return false;
    }
    tg_tensor *t = new_header(tape, n->op->name);
    void *data = t ? tg_arena_alloc(tape, bytes, zero, n->op->name) : NULL;
    if (!data)
        return false;
    tg_tensor_set_shape(t, n->in[0]->dtype, ndim, shape, numel);
    t->data = data;
    t->flags = TG_FLAG_TAPE;
    n->out = t;
    return true;
}

bool tg_node_output_view(tg_node *n, const tg_tensor *x, int ndim, const int64_t *shape)
{
    tg_tensor *t = new_header(n->tape, n->op->name);
    if (!t)
        return false;
    tg_tensor_set_shape(t, x->dtype, ndim, shape, x->numel);
    t->data = x->data;
    t->flags = TG_FLAG_TAPE | TG_FLAG_VIEW;
    n->out = t;
    return true;
}

tg_tensor *tg_node_finish(tg_node *n)
{
    tg_tape *tape = n->tape;
    n->op->forward(n);
    if (tape->status != TG_OK)
        return NULL;
    if (!tape->grad_enabled)
        return n->out;
    for (int i = 0; i < n->nin; i++) {
        if (n->in[i]->flags & TG_FLAG_REQUIRES_GRAD) {
            n->out->flags |= TG_FLAG_REQUIRES_GRAD;
            n->prev = tape->last;
            tape->last = n;
            break;
        }
    }
    return n->out;
}

/* ---- backward ---------------------------------------------------------------------
 * Gradients of tape tensors live in the arena, are given out by alloc_grads before the
 * walk (recycled: a buffer serves several tensors in turn) and are gone afterwards;
 * gradients of caller-owned tensors (parameters) accumulate across calls.
 */
const float *tg_packed_weight(tg_tape *tape, const tg_tensor *w, bool tb, int64_t rows)
{
    if (!tape->grad_enabled || w->dtype != TG_F32 || w->ndim != 2 ||
        (w->flags & TG_FLAG_TAPE) || !(w->flags & TG_FLAG_REQUIRES_GRAD) ||
        (tb && rows != w->shape[0]))
        return NULL;
    for (wpack *e = tape->packs; e; e = e->next)
        if (e->w == w && e->tb == tb && e->rows == rows)
            return e->packed;
    int64_t K = tb ? w->shape[1] : rows, N = tb ? w->shape[0] : w->shape[1];
    int64_t n = tg_sgemm_packed_size(K, N);
    if (n <= 0 || tape->status != TG_OK)
        return NULL;
    /* optional: without memory the product packs as it goes, and no error is recorded */
    wpack *e = tg_arena_alloc(tape, sizeof *e, false, NULL);
    float *packed = e ? tg_arena_alloc(tape, (size_t)n * sizeof(float), false, NULL) : NULL;
    if (!packed)
        return NULL;
    tg_sgemm_pack(tb, K, N, w->data, w->shape[1], packed);
    *e = (wpack){ .w = w, .tb = tb, .rows = rows, .packed = packed, .next = tape->packs };
    tape->packs = e;
    return packed;
}

tg_groups **tg_tape_groups(tg_tape *tape)
{
    return tape->no_groups || !tape->grad_enabled ? NULL : &tape->groups;
}

void tg_tape_set_grouping(tg_tape *tape, bool on)
{
    tape->no_groups = !on;
}

bool tg_defer_weight_grad(tg_tape *tape, tg_tensor *w, tg_tensor *b, const tg_tensor *x,
                          const void *dy)
{
    wgrad *q = tg_arena_alloc(tape, sizeof *q, false, "backward");
    if (!q)
        return false;
    *q = (wgrad){ .w = w, .b = b, .x = x->data, .dy = dy, .rows = x->shape[0] };
    q->dense = tg_dense_cols(x, &q->hot);
    if (tape->wq_last)
        tape->wq_last->next = q;
    else
        tape->wq = q;
    tape->wq_last = q;
    return true;
}

void tg_add_rows_at(tg_tensor *w, const int64_t *at, const char *const *rows, int64_t nrows)
{
    enum { BLOCK = 64 };
    int64_t N = w->shape[w->ndim - 1], nblocks = (N + BLOCK - 1) / BLOCK;
    TG_DISPATCH(w->dtype,
        T *dw = w->grad;
        TG_FOR(nrows * N, blk, nblocks,
            int64_t j0 = blk * BLOCK, j1 = j0 + BLOCK < N ? j0 + BLOCK : N;
            for (int64_t k = 0; k < nrows; k++) {
                const T *g = (const T *)(const void *)rows[k];
                T *d = dw + (at ? at[k] * N : 0);
                for (int64_t j = j0; j < j1; j++)
                    d[j] += g[j];
            }););
}

/* The columns of the X queued for W from q on that the product reads: all of them, or,
   when every X ends in a one-hot tail at the same column, those before it. */
static int64_t queued_dense_cols(const wgrad *q)
{
    for (const wgrad *r = q; r; r = r->next)
        if (r->w == q->w && (!r->hot || r->dense != q->dense))
            return q->w->shape[0];
    return q->dense;
}

/* Runs the queued weight gradients: for each W (in order of first appearance), one
   dW += A^T @ B whose rows are the rows of every X queued for W, in queue order (tape
   order reversed), against the matching rows of dY; and the biases queued with them.
   When every such X ends in a one-hot tail at the same column, the product reads the
   columns before it and dY's rows are added to the rows of W the tail gathered. */
static void run_weight_grads(tg_tape *tape)
{
    for (wgrad *q = tape->wq; q; q = q->next) {
        if (q->done)
            continue;
        tg_tensor *w = q->w;
        int64_t K = w->shape[0], N = w->shape[1], rows = 0, k = 0;
        int64_t dense = queued_dense_cols(q);
        size_t es = tg_dtype_size(w->dtype);
        for (wgrad *r = q; r; r = r->next)
            if (r->w == w)
                rows += r->rows;
        const char **arows = tg_arena_alloc(tape, 2 * (size_t)rows * sizeof *arows, false,
                                            "backward");
        int64_t *at = dense < K ? tg_arena_alloc(tape, (size_t)rows * sizeof *at, false,
                                                 "backward") : NULL;
        if (!arows || (dense < K && !at))
            break;              /* TG_ERR_NOMEM is recorded */
        const char **brows = arows + rows;
        for (wgrad *r = q; r; r = r->next) {
            if (r->w != w)
                continue;
            r->done = true;
            for (int64_t i = 0; i < r->rows; i++, k++) {
                arows[k] = (const char *)r->x + (size_t)(i * K) * es;
                brows[k] = (const char *)r->dy + (size_t)(i * N) * es;
                if (at)
                    at[k] = dense + r->hot[i];
            }
        }
        if (w->dtype == TG_F64)
            tg_dgemm_rows(dense, N, rows, 1.0, (const double *const *)arows,
                          (const double *const *)brows, 1.0, w->grad, N);
        else
            tg_sgemm_rows(dense, N, rows, 1.0f, (const float *const *)arows,
                          (const float *const *)brows, 1.0f, w->grad, N);
        if (at)
            tg_add_rows_at(w, at, brows, rows);
        /* the biases, one sum per run of consecutive products that share one (usually a
           single run: all of W's) */
        tg_tensor *b = NULL;
        int64_t k0 = 0;
        k = 0;
        for (wgrad *r = q; r; r = r->next) {
            if (r->w != w)
                continue;
            if (r->b != b) {
                if (b)
                    tg_add_rows_at(b, NULL, brows + k0, k - k0);
                b = r->b, k0 = k;
            }
            k += r->rows;
        }
        if (b)
            tg_add_rows_at(b, NULL, brows + k0, k - k0);
    }
    tape->wq = tape->wq_last = NULL;
}

/* The gradient buffers no tensor uses any more, one free list per size (GRAD_SIZES sizes
   at most; buffers of further sizes are not recycled). */
enum { GRAD_SIZES = 32 };
typedef struct freebuf {
    void           *buf;
    struct freebuf *next;
} freebuf;
typedef struct grad_pool {
    size_t   bytes[GRAD_SIZES];
    freebuf *free[GRAD_SIZES];
    int      nsizes;
} grad_pool;

static size_t grad_bytes(const tg_tensor *t)
{
    return aligned((size_t)t->numel * tg_dtype_size(t->dtype));
}

/* Gives t a stale (garbage) gradient buffer: a free one of its size, else a new one. */
static bool take_grad(tg_tape *tape, grad_pool *pool, tg_tensor *t)
{
    size_t bytes = grad_bytes(t);
    for (int c = 0; c < pool->nsizes; c++) {
        if (pool->bytes[c] == bytes && pool->free[c]) {
            t->grad = pool->free[c]->buf;
            pool->free[c] = pool->free[c]->next;
            break;
        }
    }
    if (!t->grad)
        t->grad = tg_arena_alloc(tape, bytes, false, "backward");
    t->flags |= TG_FLAG_GRAD_STALE;
    return t->grad != NULL;
}

/* Flags t as giving its gradient buffer back (it keeps none after backward) and puts the
   buffer on the free list of its size, if the pool has one. */
static bool give_grad(tg_tape *tape, grad_pool *pool, tg_tensor *t)
{
    t->flags |= TG_FLAG_GRAD_RECYCLED;
    size_t bytes = grad_bytes(t);
    int c = 0;
    while (c < pool->nsizes && pool->bytes[c] != bytes)
        c++;
    if (c == GRAD_SIZES)
        return true;
    if (c == pool->nsizes) {
        pool->bytes[c] = bytes;
        pool->free[c] = NULL;
        pool->nsizes++;
    }
    freebuf *f = tg_arena_alloc(tape, sizeof *f, false, "backward");
    if (!f)
        return false;
    *f = (freebuf){ .buf = t->grad, .next = pool->free[c] };
    pool->free[c] = f;
    return true;
}

/* Before any op runs backward, marks the node outputs the walk from the loss reaches and
   gives a gradient buffer to every tape tensor it will write, the loss first, marked stale
   (garbage: before a node's backward runs, each stale input gradient is handed to the op
   to overwrite, see tg_op.overwrites, or zeroed then). Buffers are recycled: a node
   output's gradient is dead once its node has run backward, so its buffer goes to the
   tensors first written after that (older nodes' inputs). A step's gradients then stay in
   cache instead of streaming through as much memory as its activations; the recycled
   tensors are flagged and keep no gradient afterwards. All or nothing: false (NOMEM
   recorded) before any gradient is touched. Every node output starts without a gradient
   buffer: a backward leaves none behind. */
static bool alloc_grads(tg_tape *tape, tg_tensor *loss)
{
    grad_pool pool = { .nsizes = 0 };
    loss->flags |= TG_FLAG_GRAD_REACHED;
    if (!take_grad(tape, &pool, loss))
        return false;
    for (tg_node *n = tape->last; n; n = n->prev) {
        tg_tensor *y = n->out;
        if (!(y->flags & TG_FLAG_GRAD_REACHED))
            continue;
        for (int i = 0; i < n->nin; i++) {
            tg_tensor *x = n->in[i];
            x->flags |= TG_FLAG_GRAD_REACHED;
            if (!x->grad && (x->flags & TG_FLAG_REQUIRES_GRAD) && (x->flags & TG_FLAG_TAPE) &&
                !take_grad(tape, &pool, x))
                return false;
        }
        /* n's backward is the last to read it, unless it queues work that does */
        if (!(y->flags & TG_FLAG_GRAD_KEEP) && !give_grad(tape, &pool, y))
            return false;
    }
    return true;
}

tg_status tg_backward(tg_tape *tape, tg_tensor *loss)
{
    if (!tape)
        return TG_ERR_NULL;
    if (tape->status != TG_OK)
        return tape->status;
    if (!loss) {
        tg_fail(tape, TG_ERR_NULL, "backward", "loss is NULL");
        return tape->status;
    }
    if ((loss->flags & TG_FLAG_TAPE) && !tg_tape_owns(tape, loss)) {
        fail_foreign(tape, "backward", "the loss", loss);
        return tape->status;
    }
    if (loss->numel != 1) {
        tg_fail(tape, TG_ERR_SHAPE, "backward", "loss %s must have exactly one element",
                tg_msg_shape(loss));
        return tape->status;
    }
    if (!tape->grad_enabled || !(loss->flags & TG_FLAG_TAPE)
        || !(loss->flags & TG_FLAG_REQUIRES_GRAD)) {
        tg_fail(tape, TG_ERR_ARG, "backward",
                "loss was not recorded with gradients (grad disabled, or nothing in it "
                "requires grad)");
        return tape->status;
    }
    tape->wq = tape->wq_last = NULL;
    for (tg_node *n = tape->last; n; n = n->prev)   /* an earlier walk, maybe from another loss */
        n->out->flags &= ~TG_FLAG_GRAD_REACHED;
    if (!alloc_grads(tape, loss))
        return tape->status;
    loss->flags &= ~TG_FLAG_GRAD_STALE;
    if (loss->dtype == TG_F64)
        *(double *)loss->grad = 1.0;
    else
        *(float *)loss->grad = 1.0f;
    for (tg_node *n = tape->last; n; n = n->prev) {
        if (!(n->out->flags & TG_FLAG_GRAD_REACHED))
            continue;   /* nothing downstream of this node reached the loss */
        n->fresh = 0;
        for (int i = 0; i < n->nin; i++) {
            tg_tensor *x = n->in[i];
            if (!(x->flags & TG_FLAG_GRAD_STALE))
                continue;
            x->flags &= ~TG_FLAG_GRAD_STALE;
            if (i < 32 && ((n->op->overwrites >> i) & 1u))
                n->fresh |= 1u << i;
            else
                memset(x->grad, 0, (size_t)x->numel * tg_dtype_size(x->dtype));
        }
        n->op->backward(n);
    }
    /* recycled buffers belong to other tensors now, kept ones to the queued weight
       gradients: those outputs keep no gradient */
    for (tg_node *n = tape->last; n; n = n->prev) {
        if (n->out->flags & (TG_FLAG_GRAD_RECYCLED | TG_FLAG_GRAD_KEEP)) {
            n->out->flags &= ~(TG_FLAG_GRAD_RECYCLED | TG_FLAG_GRAD_STALE);
            n->out->grad = NULL;
        }
    }
    if (tape->status == TG_OK)
        run_weight_grads(tape);
    return tape->status;
}
