/* tests/test_fuzz.c: the fuzz suite: seeded random programs thrown at the op API (random
   ops, shapes, dtypes, dims, NULLs, other tapes, resets, failures mid-way); nothing may
   crash or leak, and the first error must stick and name its op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tests.h"

enum {
    PROGRAMS = 400,     /* random programs per run                               */
    STEPS = 40,         /* actions per program                                   */
    POOL = 12,          /* tensors an action may pick operands from              */
    IDX = 4096          /* index and target buffer (>= any first dim the ops see) */
};

/* One program's state: its tapes, the tensors it may use, and what it expects. */
typedef struct prog {
    tg_rng rng;
    tg_tape *tape, *other;            /* other: a second tape, for wrong-tape operands   */
    tg_tensor *leaf[6];               /* caller-owned, freed at the end                  */
    tg_tensor *pool[POOL];            /* leaves and results of this epoch of the tape    */
    tg_tensor *stale;                 /* a result from before the last reset, or NULL    */
    tg_tensor *foreign;               /* a result of the other tape                      */
    tg_dtype dtype;                   /* the program's usual dtype                       */
    int32_t idx[IDX];
    char first[512];                  /* the tape's first error, once there is one       */
    int ops, errors;
} prog;

static int pick(prog *p, int n)
{
    return (int)tg_rng_below(&p->rng, n);
}

static bool chance(prog *p, double q)
{
    return tg_rng_uniform(&p->rng) < q;
}

/* An operand: mostly from the pool, sometimes NULL, another tape's or a leaf. */
static tg_tensor *operand(prog *p)
{
    int r = pick(p, 100);
    if (r < 3)
        return NULL;
    if (r < 5 && p->foreign)
        return p->foreign;
    if (r < 20)
        return p->leaf[pick(p, 6)];
    return p->pool[pick(p, POOL)];
}

static int dim_arg(prog *p)
{
    return pick(p, 10) - 5;        /* -5..4: negative, valid and out of range */
}

static void random_shape(prog *p, int *ndim, int64_t *shape)
{
    *ndim = pick(p, 20) == 0 ? pick(p, 7) - 1 : 1 + pick(p, 4);    /* mostly 1..4 */
    for (int d = 0; d < 6; d++)
        shape[d] = pick(p, 25) == 0 ? pick(p, 3) - 1 : 1 + pick(p, 3);
}

/* A custom op for the fuzz: out[i] = 2 in[0][i] over the elements both have. */
static void twice_forward(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out)
{
    (void)ctx;
    (void)nin;
    int64_t n = in[0]->numel < out->numel ? in[0]->numel : out->numel;
    for (int64_t i = 0; i < out->numel; i++)
        tg_tensor_set(out, i, i < n ? 2 * tg_tensor_get(in[0], i) : 0);
}

static void twice_backward(void *ctx, const tg_tensor *const *in, int nin, const tg_tensor *out,
                           const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx;
    (void)nin;
    int64_t n = in[0]->numel < out->numel ? in[0]->numel : out->numel;
    if (din[0])
        for (int64_t i = 0; i < n; i++)
            tg_tensor_set(din[0], i, tg_tensor_get(din[0], i) + 2 * tg_tensor_get(dout, i));
}

static const tg_custom_op twice_op = { "twice", twice_forward, twice_backward };

/* Applies a random op to random operands; *name gets the op's name as messages give it. */
static tg_tensor *random_op(prog *p, const char **name)
{
    tg_tape *t = p->tape;
    tg_tensor *a = operand(p), *b = operand(p), *c = operand(p);
    int ndim;
    int64_t shape[6];
    static const char *const unary_names[] = { "neg", "sigmoid", "tanh", "relu", "exp", "log",
                                               "sqrt", "rsqrt", "abs", "softplus" };
    tg_tensor *(*const unary[])(tg_tape *, tg_tensor *) = {
        tg_neg, tg_sigmoid, tg_tanh, tg_relu, tg_exp, tg_log, tg_sqrt, tg_rsqrt, tg_abs,
        tg_softplus };
    static const char *const binary_names[] = { "add", "sub", "mul", "div", "matmul", "bmm",
                                                "mse_loss", "maximum", "minimum" };
    tg_tensor *(*const binary[])(tg_tape *, tg_tensor *, tg_tensor *) = {
        tg_add, tg_sub, tg_mul, tg_div, tg_matmul, tg_bmm, tg_mse_loss, tg_maximum,
        tg_minimum };
    /* scalars for pow and clamp: mostly ordinary, sometimes 0, a bound order swapped, NaN */
    static const double odd_scalars[] = { 0.0, 0.5, 2.0, -1.0, NAN, INFINITY, -INFINITY };
    double s1 = chance(p, 0.3) ? odd_scalars[pick(p, 7)] : tg_rng_normal(&p->rng);
    double s2 = chance(p, 0.3) ? odd_scalars[pick(p, 7)] : tg_rng_normal(&p->rng);
    switch (pick(p, 26)) {
    case 0: { int k = pick(p, 10); *name = unary_names[k]; return unary[k](t, a); }
    case 1: { int k = pick(p, 9); *name = binary_names[k]; return binary[k](t, a, b); }
    case 2: *name = "scale"; return tg_scale(t, a, tg_rng_normal(&p->rng));
    case 3: *name = "add_scalar"; return tg_add_scalar(t, a, tg_rng_normal(&p->rng));
    case 4: *name = "affine"; return tg_affine(t, a, b, chance(p, 0.3) ? NULL : c);
    case 5: *name = "transpose"; return tg_transpose(t, a);
    case 6:
        random_shape(p, &ndim, shape);
        *name = "reshape";
        return tg_reshape(t, a, ndim, chance(p, 0.03) ? NULL : shape);
    case 7: *name = "concat"; return tg_concat(t, a, b, dim_arg(p));
    case 8: {
        tg_tensor *xs[3] = { a, b, c };
        *name = "concat";
        return tg_concat_n(t, chance(p, 0.03) ? NULL : xs, pick(p, 5) - 1, dim_arg(p));
    }
    case 9:
        *name = "slice";
        return tg_slice(t, a, dim_arg(p), pick(p, 5) - 1, pick(p, 5) - 1);
    case 10: *name = pick(p, 2) ? "sum" : "mean"; return **name == 's' ? tg_sum(t, a)
                                                                        : tg_mean(t, a);
    case 11: {
        static const char *const names[] = { "sum_dim", "mean_dim", "max_dim",
                                             "logsumexp_dim", "flip" };
        tg_tensor *(*const f[])(tg_tape *, tg_tensor *, int) = {
            tg_sum_dim, tg_mean_dim, tg_max_dim, tg_logsumexp_dim, tg_flip };
        int k = pick(p, 5);
        *name = names[k];
        return f[k](t, a, dim_arg(p));
    }
    case 12: *name = "var_dim"; return tg_var_dim(t, a, dim_arg(p), pick(p, 4) - 1);
    case 13: *name = pick(p, 2) ? "softmax" : "log_softmax";
        return (*name)[0] == 's' ? tg_softmax(t, a) : tg_log_softmax(t, a);
    case 14:
        *name = "cross_entropy";
        return tg_cross_entropy(t, a, chance(p, 0.03) ? NULL : p->idx);
    case 15:
        *name = "embedding";
        return tg_embedding(t, a, chance(p, 0.03) ? NULL : p->idx, pick(p, 10) - 1);
    case 16:
        *name = "dropout";
        return tg_dropout(t, a, (double)(pick(p, 5) - 1) * 0.3, chance(p, 0.1) ? NULL : &p->rng);
    case 17:
        *name = "layer_norm";
        return tg_layer_norm(t, a, chance(p, 0.5) ? NULL : b, chance(p, 0.5) ? NULL : c,
                             chance(p, 0.1) ? -1.0 : 1e-5);
    case 18: {
        tg_tensor *xs[3] = { a, b, c };
        *name = "stack";
        return tg_stack(t, chance(p, 0.03) ? NULL : xs, pick(p, 5) - 1, dim_arg(p));
    }
    case 19: {
        tg_tensor *out[4] = { NULL };
        *name = "chunk";
        int n = pick(p, 5) - 1;
        tg_status st = tg_chunk(t, a, n, dim_arg(p), chance(p, 0.03) ? NULL : out);
        ck_assert_int_eq(st, tg_tape_status(t));
        return st == TG_OK ? out[pick(p, n)] : NULL;
    }
    case 20:
        *name = "one_hot";
        return tg_one_hot(t, chance(p, 0.1) ? (tg_dtype)3 : p->dtype,
                          chance(p, 0.03) ? NULL : p->idx, pick(p, 10) - 1, pick(p, 10) - 1);
    case 21: {
        tg_tensor *in[2] = { a, b };
        random_shape(p, &ndim, shape);
        const tg_custom_op *op = chance(p, 0.05) ? NULL : &twice_op;
        *name = op ? "twice" : "custom";
        return tg_custom(t, op, in, pick(p, 4) - 1, ndim, shape, NULL);
    }
    case 22:
        random_shape(p, &ndim, shape);
        *name = "tape_tensor";
        return tg_tape_tensor(t, chance(p, 0.1) ? (tg_dtype)5 : p->dtype, ndim, shape);
    case 23:
        *name = pick(p, 2) ? "pow" : "clamp";
        return (*name)[0] == 'p' ? tg_pow(t, a, s1) : tg_clamp(t, a, s1, s2);
    case 24: *name = "where"; return tg_where(t, a, b, c);
    default:
        *name = "user_cell";
        return tg_tape_fail(t, TG_ERR_ARG, "user_cell: refused operand %d", pick(p, 3));
    }
}

/* Runs one op and checks the error contract: a result is a valid tape tensor; NULL
   means the tape holds an error, and the first one names the op that failed. */
static void step_op(prog *p)
{
    bool was_ok = tg_tape_status(p->tape) == TG_OK;
    const char *name = "?";
    tg_tensor *y = random_op(p, &name);
    p->ops++;
    const char *msg = tg_tape_errmsg(p->tape);
    if (y) {
        ck_assert_msg(was_ok && tg_tape_status(p->tape) == TG_OK, "%s gave a result on a "
                      "failed tape", name);
        bool leaf = false;          /* dropout with p = 0 hands back its operand */
        for (int i = 0; i < 6; i++)
            leaf = leaf || y == p->leaf[i];
        ck_assert_msg((y->flags & TG_FLAG_TAPE) || leaf, "%s: not a tape tensor", name);
        ck_assert(y->ndim >= 1 && y->ndim <= TG_MAX_DIMS && y->numel >= 1);
        int64_t n = 1;
        for (int d = 0; d < y->ndim; d++)
            n *= y->shape[d];
        ck_assert_int_eq(n, y->numel);
        p->pool[pick(p, POOL)] = y;
        return;
    }
    ck_assert_msg(tg_tape_status(p->tape) != TG_OK, "%s returned NULL without an error", name);
    if (was_ok) {               /* this op made the first error: it must name it */
        ck_assert_msg(strstr(msg, name) != NULL, "first error '%s' does not name %s", msg,
                      name);
        snprintf(p->first, sizeof p->first, "%s", msg);
        p->errors++;
    } else {                    /* sticky: the first message stays */
        ck_assert_msg(strcmp(msg, p->first) == 0, "'%s' replaced '%s' (by %s)", msg,
                      p->first, name);
    }
}

/* Backward from a random tensor (or another tape's, or a sum); checks the status. */
static void step_backward(prog *p)
{
    bool was_ok = tg_tape_status(p->tape) == TG_OK;
    tg_tensor *loss = chance(p, 0.1) ? p->foreign : operand(p);
    if (loss && chance(p, 0.7) && (loss->flags & TG_FLAG_TAPE) && loss != p->foreign)
        loss = tg_sum(p->tape, loss);
    tg_status st = tg_backward(p->tape, loss);
    ck_assert_int_eq(st, tg_tape_status(p->tape));
    if (st != TG_OK && was_ok) {
        ck_assert_msg(strstr(tg_tape_errmsg(p->tape), "backward") ||
                      strstr(tg_tape_errmsg(p->tape), "sum"), "'%s'", tg_tape_errmsg(p->tape));
        snprintf(p->first, sizeof p->first, "%s", tg_tape_errmsg(p->tape));
    }
    if (loss == p->foreign && loss && was_ok)
        ck_assert_int_eq(st, TG_ERR_ARG);
}

/* Resets the tape: the pool falls back to the leaves; one old result is kept as stale,
   and the next op may use it, which must fail and say so. */
static void step_reset(prog *p)
{
    tg_tensor *old = p->pool[pick(p, POOL)];
    tg_tape_reset(p->tape);
    tg_tape_set_memory_limit(p->tape, chance(p, 0.2) ? (size_t)(1 + pick(p, 64)) << 10 : 0);
    tg_tape_set_grad_enabled(p->tape, !chance(p, 0.2));
    p->first[0] = '\0';
    for (int i = 0; i < POOL; i++)
        p->pool[i] = p->leaf[i % 6];
    if (old && (old->flags & TG_FLAG_TAPE) && old != p->foreign && chance(p, 0.5)) {
        tg_tensor *y = tg_neg(p->tape, old);   /* before anything reuses its memory */
        ck_assert_ptr_null(y);
        ck_assert_msg(strstr(tg_tape_errmsg(p->tape), "neg: operand 1 was recorded before "
                             "the tape's last reset") != NULL, "'%s'", tg_tape_errmsg(p->tape));
        snprintf(p->first, sizeof p->first, "%s", tg_tape_errmsg(p->tape));
    }
}

static void prog_init(prog *p, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    tg_rng_seed(&p->rng, seed);
    p->dtype = pick(p, 2) ? TG_F64 : TG_F32;
    p->tape = tg_tape_new();
    p->other = tg_tape_new();
    for (int i = 0; i < 6; i++) {
        int ndim = 1 + pick(p, 3);
        int64_t shape[4];
        for (int d = 0; d < 4; d++)
            shape[d] = 1 + pick(p, 3);
        p->leaf[i] = tg_tensor_new(chance(p, 0.1) ? TG_F32 + TG_F64 - p->dtype : p->dtype,
                                   ndim, shape);
        tg_tensor_fill_uniform(p->leaf[i], &p->rng, 0.1, 2);
        if (chance(p, 0.5))
            ck_assert_int_eq(tg_tensor_requires_grad(p->leaf[i]), TG_OK);
    }
    for (int i = 0; i < POOL; i++)
        p->pool[i] = p->leaf[i % 6];
    for (int i = 0; i < IDX; i++)
        p->idx[i] = (int32_t)pick(p, 6) - (pick(p, 50) == 0 ? 3 : 0);
    p->foreign = tg_tanh(p->other, p->leaf[0]);
}

static void prog_free(prog *p)
{
    tg_tape_free(p->tape);
    tg_tape_free(p->other);
    for (int i = 0; i < 6; i++)
        tg_tensor_free(p->leaf[i]);
}

START_TEST(test_random_programs)
{
    int ops = 0, errors = 0;
    for (int k = 0; k < PROGRAMS; k++) {
        prog *p = malloc(sizeof *p);
        ck_assert_ptr_nonnull(p);
        prog_init(p, 0xf00du + (uint64_t)k);
        for (int s = 0; s < STEPS; s++) {
            int r = pick(p, 100);
            if (r < 6)
                step_reset(p);
            else if (r < 12)
                step_backward(p);
            else if (r < 14)
                tg_tape_push_scope(p->tape, "scope");
            else
                step_op(p);
        }
        ops += p->ops;
        errors += p->errors;
        prog_free(p);
        free(p);
    }
    printf("fuzz: %d programs, %d ops, %d first errors\n", PROGRAMS, ops, errors);
}
END_TEST

Suite *fuzz_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("programs", 60),
        TG_TEST(test_random_programs),
    };
    return TG_TEST_SUITE("fuzz", rows);
}
