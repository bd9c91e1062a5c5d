/* tests/test_regular.c: the recurrent regularisers in stacks: finding the recurrent
   weights of any cell type, variational dropout, zoneout and weight drop. */
#include <stdint.h>
#include <stdlib.h>

#include "tests/tests.h"

/* Legend: B batch, I input, H hidden, T time. */

enum { RB = 3, RI = 5, RH = 4, RT = 4 };

/* Every registered type the library ships. */
static const char *const all_types[] = { "lstm", "gru", "rnn", "lnlstm", "peephole",
                                         "torchgru", "mgu", "indrnn" };

typedef struct regstack {
    tg_params *ps;
    tg_rnn_stack s;
    tg_tensor *x[RT], *r[RT];     /* inputs (B,I) and the loss's weights (B,H) */
    bool training;
    uint64_t mask_seed;
} regstack;

/* A 2-layer float64 stack of type with the three regularisers; inputs from seed 21. */
static void regstack_init(regstack *f, const char *type, double var, double zone,
                          double wdrop)
{
    memset(f, 0, sizeof *f);
    f->ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    ck_assert_int_eq(tg_rnn_stack_init(&f->s, f->ps, "rnn", tg_test_cell_type(type), 2, RI,
                                       RH, 0.0, NULL, &rng), TG_OK);
    f->s.var_dropout = var;
    f->s.zoneout = zone;
    f->s.weight_drop = wdrop;
    for (int t = 0; t < RT; t++) {
        f->x[t] = tg_test_new_f64(2, RB, RI, NULL);
        f->r[t] = tg_test_new_f64(2, RB, RH, NULL);
        tg_tensor_fill_uniform(f->x[t], &rng, -1, 1);
        tg_tensor_fill_uniform(f->r[t], &rng, -1, 1);
    }
    f->training = true;
    f->mask_seed = 31;
}

static void regstack_free(regstack *f)
{
    for (int t = 0; t < RT; t++) {
        tg_tensor_free(f->x[t]);
        tg_tensor_free(f->r[t]);
    }
    tg_rnn_stack_deinit(&f->s);
    tg_params_free(f->ps);
}

/* sum_t sum(top_t * r_t) over one window from zeros, masks from mask_seed: the same
   function at every call (what gradient checking needs). */
static tg_tensor *regstack_loss(tg_tape *tape, void *user)
{
    regstack *f = user;
    tg_rng rng;
    tg_rng_seed(&rng, f->mask_seed);
    tg_stack_state cur = { .layers = 2 };
    tg_tensor *loss = NULL;
    for (int t = 0; t < RT; t++) {
        tg_tensor *top = tg_rnn_stack_step(tape, &f->s, f->x[t], &cur, f->training, &rng);
        tg_tensor *term = tg_sum(tape, tg_mul(tape, top, f->r[t]));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    return loss;
}

static double regstack_value(regstack *f)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = regstack_loss(tape, f);
    ck_assert_msg(loss != NULL, "%s", tg_tape_errmsg(tape));
    double v = tg_tensor_get(loss, 0);
    tg_tape_free(tape);
    return v;
}

/* ---- finding the recurrent weights ------------------------------------------------ */

START_TEST(test_finds_recurrent_weights)
{
    /* per type: how many parameters hold rows that act on h alone, each rows 0..H-1: the
       first H rows over concat(h, x), all rows of a hidden-to-hidden weight or of u, and
       the classic GRU's reset bias (r multiplies h and nothing else) */
    static const struct { const char *type; int count; } cases[] = {
        { "lstm", 4 }, { "gru", 4 }, { "rnn", 1 }, { "lnlstm", 1 },
        { "peephole", 1 }, { "torchgru", 1 }, { "mgu", 2 }, { "indrnn", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        regstack f;
        regstack_init(&f, cases[i].type, 0, 0, 0);
        for (int l = 0; l < 2; l++) {
            const tg_recurrent_rows *rows;
            int n = tg_rnn_stack_recurrent(&f.s, l, &rows);
            ck_assert_msg(n == cases[i].count, "%s layer %d: %d runs", cases[i].type, l, n);
            for (int k = 0; k < n; k++) {
                const tg_recurrent_rows *r = &rows[k];
                ck_assert_int_eq(r->row0, 0);
                ck_assert_int_eq(r->rows, RH);
                ck_assert(r->offset != SIZE_MAX);
            }
        }
        regstack_free(&f);
    }
}
END_TEST

/* A user's cell the library knows nothing about: h' = relu(x @ a + b) + tanh(h @ m.w_hh)
   with the recurrent weight in a nested struct after the input weight, and a second
   pointer to it (the probe must not care about names or layout). */
typedef struct odd_cell {
    int in, hidden;
    tg_tensor *a, *b;
    struct { double pad; tg_tensor *w_hh; } m;
    tg_tensor *alias;
} odd_cell;

static tg_status odd_init(void *cell, tg_params *ps, const char *prefix, int in, int hidden,
                          const tg_init *init, tg_rng *rng)
{
    (void)init;
    odd_cell *c = cell;
    char name[64];
    c->in = in;
    c->hidden = hidden;
    snprintf(name, sizeof name, "%s.a", prefix);
    c->a = tg_params_add(ps, name, 2, (const int64_t[]){ in, hidden });
    snprintf(name, sizeof name, "%s.b", prefix);
    c->b = tg_params_add(ps, name, 1, (const int64_t[]){ hidden });
    snprintf(name, sizeof name, "%s.recur", prefix);
    c->m.w_hh = tg_params_add(ps, name, 2, (const int64_t[]){ hidden, hidden });
    if (!c->a || !c->b || !c->m.w_hh)
        return TG_ERR_NOMEM;
    c->alias = c->m.w_hh;
    tg_tensor_fill_uniform(c->a, rng, -0.5, 0.5);
    tg_tensor_fill_uniform(c->b, rng, -0.5, 0.5);
    tg_tensor_fill_uniform(c->m.w_hh, rng, -0.5, 0.5);
    return TG_OK;
}

/* relu(x @ a + b) + tanh(h @ w): both test cells' step. */
static tg_tensor *odd_compute(tg_tape *t, tg_tensor *a, tg_tensor *b, tg_tensor *w,
                              tg_tensor *x, tg_tensor *h)
{
    tg_tensor *feed = tg_relu(t, tg_add(t, tg_matmul(t, x, a), b));
    return tg_add(t, feed, tg_tanh(t, tg_matmul(t, h, w)));
}

static void odd_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                     tg_tensor **next)
{
    const odd_cell *c = cell;
    next[0] = odd_compute(t, c->a, c->b, c->alias, x, state[0]);
}

static const tg_cell_type odd_type = { "test_odd", 1, sizeof(odd_cell), odd_init, odd_step };

/* The same cell with its parameters behind a pointer the struct does not own directly. */
typedef struct hidden_cell { tg_tensor **params; } hidden_cell;
static tg_tensor *hidden_store[2 * TG_MAX_LAYERS][3];
static int hidden_used;

static tg_status hidden_init(void *cell, tg_params *ps, const char *prefix, int in,
                             int hidden, const tg_init *init, tg_rng *rng)
{
    odd_cell tmp;
    tg_status st = odd_init(&tmp, ps, prefix, in, hidden, init, rng);
    hidden_cell *c = cell;
    c->params = hidden_store[hidden_used++ % (2 * TG_MAX_LAYERS)];
    c->params[0] = tmp.a;
    c->params[1] = tmp.b;
    c->params[2] = tmp.m.w_hh;
    return st;
}

static void hidden_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                        tg_tensor **next)
{
    tg_tensor *const *p = ((const hidden_cell *)cell)->params;
    next[0] = odd_compute(t, p[0], p[1], p[2], x, state[0]);
}

static const tg_cell_type hidden_type = { "test_hidden", 1, sizeof(hidden_cell), hidden_init,
                                          hidden_step };

/* A cell whose step always fails. */
static void failing_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                         tg_tensor **next)
{
    (void)cell, (void)x, (void)state;
    next[0] = tg_tape_fail(t, TG_ERR_ARG, "failing: on purpose");
}

static const tg_cell_type failing_type = { "test_failing", 1, sizeof(odd_cell), odd_init,
                                           failing_step };

/* Where the user-cell tests start: *s, a float64 stack of `layers` cells of type (I to
   H) named prefix, drawn from *rng seeded 5 here (it then draws the masks); returns the
   stack's parameters. */
static tg_params *user_stack(tg_rnn_stack *s, const char *prefix, const tg_cell_type *type,
                             int layers, tg_rng *rng)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng_seed(rng, 5);
    ck_assert_int_eq(tg_rnn_stack_init(s, ps, prefix, type, layers, RI, RH, 0, NULL, rng),
                     TG_OK);
    return ps;
}

START_TEST(test_finds_user_cell_weights)
{
    tg_rng rng;
    tg_rnn_stack s;
    tg_params *ps = user_stack(&s, "u", &odd_type, 2, &rng);
    for (int l = 0; l < 2; l++) {
        const odd_cell *c = s.cells[l];
        const tg_recurrent_rows *rows;
        ck_assert_int_eq(tg_rnn_stack_recurrent(&s, l, &rows), 1);
        ck_assert_ptr_eq(rows[0].w, c->m.w_hh);                 /* a and b are not */
        ck_assert_int_eq(rows[0].rows, RH);
        ck_assert_uint_eq(rows[0].offset, offsetof(odd_cell, m.w_hh));
    }
    /* weight drop replaces both pointers to the weight in the window's copy */
    s.weight_drop = 0.5;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_test_new_f64(2, RB, RI, NULL);
    tg_stack_state cur = { .layers = 2 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &cur, true, &rng));
    const odd_cell *copy = cur.window->cell[1];
    ck_assert_ptr_ne(copy, s.cells[1]);
    ck_assert_ptr_ne(copy->m.w_hh, ((const odd_cell *)s.cells[1])->m.w_hh);
    ck_assert_ptr_eq(copy->alias, copy->m.w_hh);
    ck_assert_ptr_eq(copy->a, ((const odd_cell *)s.cells[1])->a);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_unreachable_and_failing_cells)
{
    tg_rng rng;
    tg_rnn_stack s;
    tg_params *ps = user_stack(&s, "h", &hidden_type, 1, &rng);
    const tg_recurrent_rows *rows;
    ck_assert_int_eq(tg_rnn_stack_recurrent(&s, 0, &rows), 1);  /* found, not reachable */
    ck_assert(rows[0].offset == SIZE_MAX);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_test_new_f64(2, RB, RI, NULL);
    tg_stack_state cur = { .layers = 1 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &cur, true, &rng));  /* no drop */
    s.zoneout = 0.3;                                      /* zoneout needs no weights */
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &cur, true, &rng));
    s.weight_drop = 0.2;
    tg_stack_state fresh = { .layers = 1 };
    EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &s, x, &fresh, true, &rng), TG_ERR_ARG,
                "rnn_stack_step: weight_drop: layer 0's recurrent weight 0 is not held");
    ck_assert_ptr_null(fresh.window);
    s.weight_drop = 0;
    s.var_dropout = 0.2;
    EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &s, x, &fresh, true, &rng), TG_ERR_ARG,
                "rnn_stack_step: var_dropout: layer 0's recurrent weight 0 is not held");
    tg_tape_reset(tape);                                  /* evaluation needs neither */
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &fresh, false, NULL));
    tg_rnn_stack_deinit(&s);

    /* a cell whose step fails: init succeeds with nothing found, and weight drop says so
       (the step itself reports its own error when used) */
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "f", &failing_type, 1, RI, RH, 0, NULL, &rng),
                     TG_OK);
    ck_assert_int_eq(tg_rnn_stack_recurrent(&s, 0, &rows), 0);
    s.weight_drop = 0.1;
    tg_stack_state again = { .layers = 1 };
    EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &s, x, &again, true, &rng), TG_ERR_ARG,
                "rnn_stack_step: weight_drop: cell type \"test_failing\" has no recurrent "
                "weights in layer 0");
    EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &s, x, &again, false, &rng), TG_ERR_ARG,
                "f.0: failing: on purpose");
    tg_rnn_stack_deinit(&s);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_probe_keeps_params_and_grads)
{
    /* init draws exactly what the cells' own inits draw (the probe is not run there), and
       probing, at the first call, keeps the parameters and whatever gradients they hold */
    regstack f;
    regstack_init(&f, "lnlstm", 0, 0, 0);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    tg_lnlstm_cell cells[2];
    const tg_cell_type *type = tg_cell_type_find("lnlstm");
    ck_assert_int_eq(type->init(&cells[0], ps, "rnn.0", RI, RH, NULL, &rng), TG_OK);
    ck_assert_int_eq(type->init(&cells[1], ps, "rnn.1", RH, RH, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_params_count(ps), tg_params_count(f.ps));
    for (int i = 0; i < tg_params_count(f.ps); i++) {             /* gradients: 0.25 */
        tg_tensor *b = tg_params_at(f.ps, i);
        for (int64_t j = 0; j < b->numel; j++)
            ((double *)b->grad)[j] = 0.25;
    }
    const tg_recurrent_rows *rows;
    ck_assert_int_eq(tg_rnn_stack_recurrent(&f.s, 1, &rows), 1);
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *a = tg_params_at(ps, i), *b = tg_params_at(f.ps, i);
        for (int64_t j = 0; j < a->numel; j++) {
            ck_assert_double_eq(tg_tensor_get(a, j), tg_tensor_get(b, j));
            ck_assert_double_eq(((const double *)b->grad)[j], 0.25);
        }
    }
    ck_assert_int_eq(tg_rnn_stack_recurrent(&f.s, 2, &rows), -1);        /* errors */
    ck_assert_str_eq(tg_last_error(), "rnn_stack_recurrent: layer 2 of 2");
    ck_assert_int_eq(tg_rnn_stack_recurrent(NULL, 0, &rows), -1);
    ck_assert_int_eq(tg_rnn_stack_recurrent(&f.s, 0, NULL), -1);
    tg_rnn_stack zero = { 0 };
    ck_assert_int_eq(tg_rnn_stack_recurrent(&zero, 0, &rows), -1);
    tg_params_free(ps);
    regstack_free(&f);
}
END_TEST

/* ---- behaviour --------------------------------------------------------------------- */

START_TEST(test_off_at_evaluation)
{
    /* variational dropout and weight drop leave evaluation exactly as without them,
       for every type; in training they act */
    const char *type = all_types[_i];
    regstack plain, reg;
    regstack_init(&plain, type, 0, 0, 0);
    regstack_init(&reg, type, 0.5, 0, 0.5);
    plain.training = reg.training = false;
    ck_assert_double_eq(regstack_value(&plain), regstack_value(&reg));
    reg.training = true;
    ck_assert_double_ne(regstack_value(&plain), regstack_value(&reg));
    plain.training = true;                 /* plain training is evaluation bit for bit */
    double train = regstack_value(&plain);
    plain.training = false;
    ck_assert_double_eq(train, regstack_value(&plain));
    regstack_free(&plain);
    regstack_free(&reg);
}
END_TEST

START_TEST(test_zoneout_evaluation_is_expectation)
{
    /* one step from zeros at evaluation: every state is (1-z) * the plain step's */
    const char *type = all_types[_i];
    regstack plain, zone;
    regstack_init(&plain, type, 0, 0, 0);
    regstack_init(&zone, type, 0, 0.3, 0);
    tg_tape *tape = tg_tape_new();
    tg_stack_state a = { .layers = 2 }, b = { .layers = 2 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &plain.s, plain.x[0], &a, false, NULL));
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &zone.s, zone.x[0], &b, false, NULL));
    for (int k = 0; k < a.nstate; k++)
        for (int64_t i = 0; i < a.tensors[0][k]->numel; i++)      /* layer 0 */
            ck_close(tg_tensor_get(b.tensors[0][k], i),
                     0.7 * tg_tensor_get(a.tensors[0][k], i), 1e-15);
    tg_tape_free(tape);
    regstack_free(&plain);
    regstack_free(&zone);
}
END_TEST

START_TEST(test_masks_per_window)
{
    /* drawn at a window's first training step and reused at the next; a new working
       state draws new ones; none at evaluation */
    const double p = 0.3;
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_rnn_stack s;
    const int64_t B = 40, I = 30, H = 50;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "rnn", tg_test_cell_type("lstm"), 2, I, H, 0,
                                       NULL, &rng), TG_OK);
    s.var_dropout = p;
    s.weight_drop = p;
    tg_tensor *x = tg_test_new_f64(2, B, I, NULL);
    tg_tape *tape = tg_tape_new();
    tg_stack_state cur = { .layers = 2 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &cur, true, &rng));
    const tg_stack_window *w = cur.window;
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &cur, true, &rng));
    ck_assert_ptr_eq(cur.window, w);
    tg_stack_state next = { .layers = 2 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &next, true, &rng));
    ck_assert_ptr_ne(next.window, w);
    ck_assert_ptr_ne(next.window->hidden_mask[0], w->hidden_mask[0]);
    tg_stack_state eval = { .layers = 2 };
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, x, &eval, false, NULL));
    ck_assert_ptr_null(eval.window);

    /* statistics: the input mask is inverted dropout, h's is 0/1, and the dropped cell's
       recurrent rows are 0 or w/((1-p)(1-p)) while its input rows are w */
    const tg_tensor *in = w->input_mask[0], *hm = w->hidden_mask[1];
    ck_assert_int_eq(in->shape[0], B);
    ck_assert_int_eq(in->shape[1], I);
    int64_t zeros = 0;
    for (int64_t i = 0; i < in->numel; i++) {
        double v = tg_tensor_get(in, i);
        ck_assert(v == 0.0 || v == 1.0 / (1.0 - p));
        zeros += v == 0.0;
    }
    ck_assert_msg(fabs((double)zeros / (double)in->numel - p) < 0.04, "%lld of %lld",
                  (long long)zeros, (long long)in->numel);
    zeros = 0;
    for (int64_t i = 0; i < hm->numel; i++) {
        double v = tg_tensor_get(hm, i);
        ck_assert(v == 0.0 || v == 1.0);
        zeros += v == 0.0;
    }
    ck_assert(fabs((double)zeros / (double)hm->numel - p) < 0.04);
    const tg_lstm_cell *orig = s.cells[1], *dropped = w->cell[1];
    const tg_tensor *w0 = orig->forget.w, *w1 = dropped->forget.w;     /* (H+H, H) */
    zeros = 0;
    for (int64_t i = 0; i < w0->numel; i++) {
        double a = tg_tensor_get(w0, i), b = tg_tensor_get(w1, i);
        if (i >= H * H) {
            ck_assert_double_eq(a, b);                              /* x's rows */
        } else {
            ck_assert(b == 0.0 || b == a * (1.0 / (1.0 - p) * (1.0 / (1.0 - p))));
            zeros += b == 0.0;
        }
    }
    ck_assert(fabs((double)zeros / (double)(H * H) - p) < 0.04);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_deterministic_and_thread_independent)
{
    regstack f;
    regstack_init(&f, all_types[_i], 0.3, 0.2, 0.4);
    tg_set_num_threads(1);
    double one = regstack_value(&f);
    tg_set_num_threads(2);
    double two = regstack_value(&f);
    ck_assert_double_eq(one, two);                 /* same seed, same masks, same bits */
    ck_assert_double_eq(one, regstack_value(&f));
    f.mask_seed = 32;
    ck_assert_double_ne(one, regstack_value(&f));
    regstack_free(&f);
}
END_TEST

START_TEST(test_gradcheck_each_type)
{
    /* float64 gradients through two layers and four steps with all three on; the
       masks are fixed by the seed, so the loss is one smooth function */
    regstack f;
    regstack_init(&f, all_types[_i], 0.3, 0.3, 0.4);
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck_params(f.ps, regstack_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "%s: worst %g", all_types[_i], res.max_rel_err);
    regstack_free(&f);
}
END_TEST

START_TEST(test_gradcheck_each_regulariser)
{
    static const double rates[3][3] = { { 0.4, 0, 0 }, { 0, 0.4, 0 }, { 0, 0, 0.4 } };
    regstack f;
    regstack_init(&f, "gru", rates[_i][0], rates[_i][1], rates[_i][2]);
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck_params(f.ps, regstack_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "regulariser %d: worst %g", _i, res.max_rel_err);
    regstack_free(&f);
}
END_TEST

START_TEST(test_errors)
{
    regstack f;
    regstack_init(&f, "lstm", 0, 0, 0);
    tg_tape *tape = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    double *field[3] = { &f.s.var_dropout, &f.s.zoneout, &f.s.weight_drop };
    static const char *const msg[3] = { "rnn_stack_step: var_dropout = ",
                                        "rnn_stack_step: zoneout = ",
                                        "rnn_stack_step: weight_drop = " };
    static const char *const norng[3] = { "rnn_stack_step: var_dropout 0.5 in training needs",
                                          "rnn_stack_step: zoneout 0.5 in training needs",
                                          "rnn_stack_step: weight_drop 0.5 in training needs" };
    const double bad[3] = { 1.0, -0.1, NAN };
    for (int i = 0; i < 3; i++) {
        for (int b = 0; b < 3; b++) {
            *field[i] = bad[b];
            tg_stack_state cur = { .layers = 2 };
            EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &f.s, f.x[0], &cur, b == 0, &rng),
                        TG_ERR_ARG, msg[i]);
            ck_assert_int_eq(cur.nstate, 0);                   /* state left unchanged */
        }
        *field[i] = 0.5;
        tg_stack_state cur = { .layers = 2 };
        EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &f.s, f.x[0], &cur, true, NULL),
                    TG_ERR_NULL, norng[i]);
        *field[i] = 0;
    }
    f.s.dropout = 1.5;
    tg_stack_state cur = { .layers = 2 };
    EXPECT_FAIL(tape, tg_rnn_stack_step(tape, &f.s, f.x[0], &cur, false, NULL), TG_ERR_ARG,
                "rnn_stack_step: dropout = 1.5 must be in [0, 1)");
    tg_tape_free(tape);
    regstack_free(&f);
}
END_TEST

START_TEST(test_charlm_regularised)
{
    /* a char-LM: training losses differ with the regularisers, evaluation does not
       (var_dropout and weight drop), and two runs with one seed agree */
    tg_charlm m;
    tg_params *ps = tg_test_charlm_params(&m, "gru", 0, 7, TG_F64);
    int32_t in[2 * 6], tgt[2 * 6];
    for (int i = 0; i < 12; i++) {
        in[i] = (i * 5) % 11;
        tgt[i] = (i * 7 + 3) % 11;
    }
    double loss[2][2];                   /* [regularised][training] */
    for (int r = 0; r < 2; r++) {
        m.rnn.var_dropout = r ? 0.4 : 0;
        m.rnn.weight_drop = r ? 0.4 : 0;
        for (int training = 0; training < 2; training++) {
            tg_tape *tape = tg_tape_new();
            tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F64, 2);
            tg_rng rng;
            tg_rng_seed(&rng, 9);
            tg_tensor *l = tg_charlm_loss(tape, &m, in, tgt, 2, 6, st, training, &rng);
            ck_assert_msg(l != NULL, "%s", tg_tape_errmsg(tape));
            loss[r][training] = tg_tensor_get(l, 0);
            tg_stack_state_free(st);
            tg_tape_free(tape);
        }
    }
    ck_assert_double_eq(loss[0][0], loss[1][0]);
    ck_assert_double_ne(loss[1][1], loss[1][0]);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST

Suite *regular_suite(void)
{
    const int ntypes = (int)(sizeof all_types / sizeof all_types[0]);
    const tg_test_row rows[] = {
        TG_CASE("regular", 60),
        TG_TEST(test_finds_recurrent_weights),
        TG_TEST(test_finds_user_cell_weights),
        TG_TEST(test_unreachable_and_failing_cells),
        TG_TEST(test_probe_keeps_params_and_grads),
        TG_LOOP(test_off_at_evaluation, ntypes),
        TG_LOOP(test_zoneout_evaluation_is_expectation, ntypes),
        TG_TEST(test_masks_per_window),
        TG_LOOP(test_deterministic_and_thread_independent, ntypes),
        TG_LOOP(test_gradcheck_each_type, ntypes),
        TG_LOOP(test_gradcheck_each_regulariser, 3),
        TG_TEST(test_errors),
        TG_TEST(test_charlm_regularised),
    };
    return TG_TEST_SUITE("regular", rows);
}
