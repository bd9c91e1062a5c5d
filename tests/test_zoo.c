/* tests/test_zoo.c: the zoo suite: each zoo cell type against a torch reference (values
   and every gradient), its gradient check, names, init and errors; bidirectional layers
   against torch.nn.GRU/LSTM(bidirectional=True). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/cells_ref.h"
#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, S states of a cell. */

#define ZOO_MAX_T 8
#define ZOO_MAX_S 2

/* The registered cell type of that name (NULL for one not built yet). */
static const tg_cell_type *zoo_type(const char *name)
{
    return tg_cell_type_find(name);
}

static tg_tensor *new_f64(int64_t d0, int64_t d1, const double *values)
{
    tg_tensor *t = tg_tensor_new(TG_F64, 2, (const int64_t[]){ d0, d1 });
    ck_assert_ptr_nonnull(t);
    if (values)
        ck_assert_int_eq(tg_tensor_fill_values(t, values), TG_OK);
    return t;
}

/* max |a[i] - want[i]| over n elements of a float64 buffer */
static double max_dev(const void *a, const double *want, int64_t n)
{
    const double *v = a;
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i] - want[i]));
    return m;
}

/* Loads the reference's parameter values into ps, checking that every name and shape
   is one the type laid out and that nothing is left over. */
static void load_params(tg_params *ps, const cellref_param *p, int n)
{
    ck_assert_int_eq(tg_params_count(ps), n);
    for (int i = 0; i < n; i++) {
        tg_tensor *t = tg_params_find(ps, p[i].name);
        ck_assert_msg(t != NULL, "no parameter %s", p[i].name);
        ck_assert_int_eq(t->ndim, p[i].ndim);
        for (int d = 0; d < p[i].ndim; d++)
            ck_assert_int_eq(t->shape[d], p[i].shape[d]);
        ck_assert_int_eq(tg_tensor_fill_values(t, p[i].value), TG_OK);
    }
}

/* worst |gradient - reference| over the parameters */
static double params_grad_dev(tg_params *ps, const cellref_param *p, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) {
        tg_tensor *t = tg_params_find(ps, p[i].name);
        m = fmax(m, max_dev(t->grad, p[i].grad, t->numel));
    }
    return m;
}

/* ---- one cell unrolled T steps ------------------------------------------------ */

typedef struct zoo_fixture {
    const cellref_case *r;
    const tg_cell_type *type;
    void *cell;
    tg_params *ps;
    tg_tensor *x[ZOO_MAX_T], *s0[ZOO_MAX_S], *rw[ZOO_MAX_T];
    tg_tensor *h[ZOO_MAX_T];   /* the last forward's outputs (tape-owned) */
} zoo_fixture;

static void zoo_fixture_init(zoo_fixture *f, const cellref_case *r)
{
    memset(f, 0, sizeof *f);
    f->r = r;
    f->type = zoo_type(r->type);
    ck_assert_ptr_nonnull(f->type);
    ck_assert_int_eq(f->type->nstate, r->nstate);
    ck_assert(r->T <= ZOO_MAX_T && r->nstate <= ZOO_MAX_S);
    f->cell = calloc(1, f->type->size);
    f->ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    ck_assert_int_eq(f->type->init(f->cell, f->ps, "cell", r->I, r->H, NULL, &rng), TG_OK);
    load_params(f->ps, r->params, r->nparams);
    int64_t bi = (int64_t)r->B * r->I, bh = (int64_t)r->B * r->H;
    for (int t = 0; t < r->T; t++) {
        f->x[t] = new_f64(r->B, r->I, r->x + t * bi);
        f->rw[t] = new_f64(r->B, r->H, r->r + t * bh);
        tg_tensor_requires_grad(f->x[t]);
    }
    for (int k = 0; k < r->nstate; k++) {
        f->s0[k] = new_f64(r->B, r->H, r->s0 + k * bh);
        tg_tensor_requires_grad(f->s0[k]);
    }
}

static void zoo_fixture_free(zoo_fixture *f)
{
    for (int t = 0; t < f->r->T; t++) {
        tg_tensor_free(f->x[t]);
        tg_tensor_free(f->rw[t]);
    }
    for (int k = 0; k < f->r->nstate; k++)
        tg_tensor_free(f->s0[k]);
    tg_params_free(f->ps);
    free(f->cell);
}

/* loss = sum_t sum(h_t * r_t) over T steps from s0 */
static tg_tensor *zoo_loss(tg_tape *tape, void *user)
{
    zoo_fixture *f = user;
    tg_tensor *state[ZOO_MAX_S], *next[ZOO_MAX_S], *loss = NULL;
    memcpy(state, f->s0, sizeof state);
    for (int t = 0; t < f->r->T; t++) {
        f->type->step(tape, f->cell, f->x[t], state, next);
        f->h[t] = next[0];
        tg_tensor *term = tg_sum(tape, tg_mul(tape, next[0], f->rw[t]));
        loss = loss ? tg_add(tape, loss, term) : term;
        memcpy(state, next, sizeof state);
    }
    return loss;
}

START_TEST(test_zoo_matches_torch)
{
    const cellref_case *r = &cellref_cases[_i];
    if (!zoo_type(r->type))
        return;                                  /* a cell whose ops have not landed */
    zoo_fixture f;
    zoo_fixture_init(&f, r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = zoo_loss(tape, &f);
    ck_assert_msg(loss != NULL, "%s: %s", r->type, tg_tape_errmsg(tape));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    int64_t bh = (int64_t)r->B * r->H;
    double dv = fabs(tg_tensor_get(loss, 0) - r->loss);
    for (int t = 0; t < r->T; t++)
        dv = fmax(dv, max_dev(f.h[t]->data, r->h + t * bh, bh));
    double dg = params_grad_dev(f.ps, r->params, r->nparams);
    for (int t = 0; t < r->T; t++)
        dg = fmax(dg, max_dev(f.x[t]->grad, r->dx + t * (int64_t)r->B * r->I,
                              (int64_t)r->B * r->I));
    for (int k = 0; k < r->nstate; k++)
        dg = fmax(dg, max_dev(f.s0[k]->grad, r->ds0 + k * bh, bh));
    ck_assert_msg(dv < 1e-9 && dg < 1e-9, "%s: values off by %g, gradients by %g", r->type,
                  dv, dg);
    tg_tape_free(tape);
    zoo_fixture_free(&f);
}
END_TEST

START_TEST(test_zoo_gradcheck)
{
    const cellref_case *r = &cellref_cases[_i];
    if (!zoo_type(r->type))
        return;
    zoo_fixture f;
    zoo_fixture_init(&f, r);
    /* layer norm's curvature puts the default step's truncation error above the tolerance
       in lnlstm; a smaller step brings it under (the error of a real bug would not move) */
    tg_gradcheck_opts opts = { .eps = strcmp(r->type, "lnlstm") == 0 ? 3e-6 : 0 };
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck_params(f.ps, zoo_loss, &f, &opts, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "%s params: worst %g", r->type, res.max_rel_err);
    tg_tensor *ins[ZOO_MAX_T + ZOO_MAX_S];
    int n = 0;
    for (int t = 0; t < r->T; t++)
        ins[n++] = f.x[t];
    for (int k = 0; k < r->nstate; k++)
        ins[n++] = f.s0[k];
    double params_err = res.max_rel_err;
    ck_assert_int_eq(tg_gradcheck(ins, n, zoo_loss, &f, &opts, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "%s inputs: worst %g", r->type, res.max_rel_err);
    (void)params_err;
    zoo_fixture_free(&f);
}
END_TEST

/* the names each type reports through tg_name, for the gate viewer */
static const char *const *zoo_names(const char *type)
{
    static const char *const lstm_like[] = { "input", "forget", "candidate", "cell", "output",
                                             "hidden", NULL };
    static const char *const torchgru[] = { "reset", "update", "candidate", "hidden", NULL };
    static const char *const mgu[] = { "forget", "candidate", "hidden", NULL };
    static const char *const indrnn[] = { "hidden", NULL };
    if (strcmp(type, "torchgru") == 0)
        return torchgru;
    if (strcmp(type, "mgu") == 0)
        return mgu;
    if (strcmp(type, "indrnn") == 0)
        return indrnn;
    return lstm_like;
}

START_TEST(test_zoo_reports_gates)
{
    const cellref_case *r = &cellref_cases[_i];
    if (!zoo_type(r->type))
        return;
    zoo_fixture f;
    zoo_fixture_init(&f, r);
    tg_recorder *rec = tg_recorder_new(1);
    tg_tape *tape = tg_tape_new();
    tg_recorder_attach(rec, tape);
    ck_assert_ptr_nonnull(zoo_loss(tape, &f));
    const char *const *names = zoo_names(r->type);
    int n = 0;
    for (; names[n]; n++) {
        tg_series ser;
        ck_assert_msg(tg_recorder_get(rec, 0, names[n], &ser) == TG_OK, "%s: no %s", r->type,
                      names[n]);
        ck_assert_int_eq(ser.rows, r->T);
        ck_assert_int_eq(ser.width, (int64_t)r->B * r->H);
    }
    ck_assert_int_eq(tg_recorder_count(rec), n);
    tg_series hidden;
    tg_recorder_get(rec, 0, "hidden", &hidden);      /* the series holds the step's h */
    ck_assert_double_eq(tg_series_at(&hidden, 2, 1), tg_tensor_get(f.h[2], 1));
    tg_tape_free(tape);
    tg_recorder_free(rec);
    zoo_fixture_free(&f);
}
END_TEST

START_TEST(test_zoo_init)
{
    const cellref_case *r = &cellref_cases[_i];
    const tg_cell_type *type = zoo_type(r->type);
    if (!type)
        return;
    /* the same seed draws the same parameters; forget_bias_one sets the forget block */
    tg_params *a = tg_params_new(TG_F64), *b = tg_params_new(TG_F64);
    void *ca = calloc(1, type->size), *cb = calloc(1, type->size);
    tg_rng ra, rb;
    tg_rng_seed(&ra, 9);
    tg_rng_seed(&rb, 9);
    tg_init fb = { TG_INIT_TORCH, 0, true };
    ck_assert_int_eq(type->init(ca, a, "x", 3, 5, NULL, &ra), TG_OK);
    ck_assert_int_eq(type->init(cb, b, "x", 3, 5, &fb, &rb), TG_OK);
    ck_assert_int_eq(tg_params_count(a), r->nparams);
    for (int i = 0; i < tg_params_count(a); i++) {
        tg_tensor *ta = tg_params_at(a, i), *tb = tg_params_at(b, i);
        ck_assert_str_eq(tg_params_name(a, i) + 2, r->params[i].name + 5);  /* "x." "cell." */
        for (int64_t j = 0; j < ta->numel; j++) {
            double va = tg_tensor_get(ta, j), vb = tg_tensor_get(tb, j);
            if (va != vb)                                   /* only a forget bias differs */
                ck_assert_double_eq(vb, 1.0);
        }
    }
    /* errors: NULL cell, bad sizes, a taken name */
    ck_assert_int_eq(type->init(NULL, a, "y", 3, 5, NULL, &ra), TG_ERR_NULL);
    ck_assert_int_eq(type->init(ca, a, "y", 0, 5, NULL, &ra), TG_ERR_ARG);
    ck_assert_int_eq(type->init(ca, a, "y", 3, 0, NULL, &ra), TG_ERR_ARG);
    ck_assert_int_eq(type->init(ca, a, "x", 3, 5, NULL, &ra), TG_ERR_ARG);
    free(ca);
    free(cb);
    tg_params_free(a);
    tg_params_free(b);
}
END_TEST

START_TEST(test_zoo_step_errors)
{
    const cellref_case *r = &cellref_cases[_i];
    if (!zoo_type(r->type))
        return;
    zoo_fixture f;
    zoo_fixture_init(&f, r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *next[ZOO_MAX_S] = { f.x[0], f.x[0] };
    f.type->step(tape, NULL, f.x[0], f.s0, next);               /* NULL cell */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_ptr_null(next[0]);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), r->type));
    tg_tape_reset(tape);
    f.type->step(tape, f.cell, f.x[0], NULL, next);             /* NULL state */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    f.type->step(tape, f.cell, f.s0[0], f.s0, next);            /* x of width H, not I */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_null(next[0]);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "want x (B,3)"));
    tg_tape_reset(tape);
    tg_tensor *bad[ZOO_MAX_S] = { f.x[0], f.x[0] };             /* a state of width I */
    f.type->step(tape, f.cell, f.x[0], bad, next);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_reset(tape);
    tg_tensor *missing[ZOO_MAX_S] = { NULL, NULL };             /* NULL operand: op's error */
    f.type->step(tape, f.cell, f.x[0], missing, next);
    ck_assert_int_ne(tg_tape_status(tape), TG_OK);
    ck_assert_ptr_null(next[0]);
    tg_tape_free(tape);
    zoo_fixture_free(&f);
}
END_TEST

/* ---- bidirectional layers ---------------------------------------------------- */

typedef struct bidir_fixture {
    const cellref_bidir *r;
    tg_bidir_rnn net;
    tg_params *ps;
    tg_tensor *x[ZOO_MAX_T], *rw[ZOO_MAX_T], *out[ZOO_MAX_T];
} bidir_fixture;

static void bidir_fixture_init(bidir_fixture *f, const cellref_bidir *r)
{
    memset(f, 0, sizeof *f);
    f->r = r;
    f->ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    ck_assert_int_eq(tg_bidir_rnn_init(&f->net, f->ps, "bi", tg_cell_type_find(r->type), r->layers,
                                       r->I, r->H, NULL, &rng), TG_OK);
    load_params(f->ps, r->params, r->nparams);
    int64_t bi = (int64_t)r->B * r->I, bo = (int64_t)r->B * 2 * r->H;
    for (int t = 0; t < r->T; t++) {
        f->x[t] = new_f64(r->B, r->I, r->x + t * bi);
        f->rw[t] = new_f64(r->B, 2 * r->H, r->r + t * bo);
        tg_tensor_requires_grad(f->x[t]);
    }
}

static void bidir_fixture_free(bidir_fixture *f)
{
    for (int t = 0; t < f->r->T; t++) {
        tg_tensor_free(f->x[t]);
        tg_tensor_free(f->rw[t]);
    }
    tg_bidir_rnn_deinit(&f->net);
    tg_params_free(f->ps);
}

/* loss = sum_t sum(out_t * r_t) */
static tg_tensor *bidir_loss(tg_tape *tape, void *user)
{
    bidir_fixture *f = user;
    if (tg_bidir_rnn_forward(tape, &f->net, f->x, f->r->T, f->out) != TG_OK)
        return NULL;
    tg_tensor *loss = NULL;
    for (int t = 0; t < f->r->T; t++) {
        tg_tensor *term = tg_sum(tape, tg_mul(tape, f->out[t], f->rw[t]));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    return loss;
}

START_TEST(test_bidir_matches_torch)
{
    const cellref_bidir *r = &cellref_bidirs[_i];
    bidir_fixture f;
    bidir_fixture_init(&f, r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = bidir_loss(tape, &f);
    ck_assert_msg(loss != NULL, "%s: %s", r->type, tg_tape_errmsg(tape));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    int64_t bo = (int64_t)r->B * 2 * r->H, bi = (int64_t)r->B * r->I;
    double dv = fabs(tg_tensor_get(loss, 0) - r->loss);
    double dg = params_grad_dev(f.ps, r->params, r->nparams);
    for (int t = 0; t < r->T; t++) {
        ck_assert_int_eq(f.out[t]->shape[1], 2 * r->H);
        dv = fmax(dv, max_dev(f.out[t]->data, r->out + t * bo, bo));
        dg = fmax(dg, max_dev(f.x[t]->grad, r->dx + t * bi, bi));
    }
    ck_assert_msg(dv < 1e-9 && dg < 1e-9, "bidirectional %s: values off by %g, gradients "
                  "by %g", r->type, dv, dg);
    tg_tape_free(tape);
    bidir_fixture_free(&f);
}
END_TEST

START_TEST(test_bidir_gradcheck)
{
    bidir_fixture f;
    bidir_fixture_init(&f, &cellref_bidirs[0]);
    tg_gradcheck_opts opts = { .max_per_tensor = 6 };
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck_params(f.ps, bidir_loss, &f, &opts, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "params: worst %g", res.max_rel_err);
    ck_assert_int_eq(tg_gradcheck(f.x, f.r->T, bidir_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "inputs: worst %g", res.max_rel_err);
    bidir_fixture_free(&f);
}
END_TEST

START_TEST(test_bidir_errors)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_bidir_rnn net;
    const tg_cell_type *gru = zoo_type("torchgru");
    ck_assert_int_eq(tg_bidir_rnn_init(NULL, ps, "bi", gru, 1, 3, 4, NULL, &rng), TG_ERR_NULL);
    ck_assert_int_eq(tg_bidir_rnn_init(&net, ps, "bi", NULL, 1, 3, 4, NULL, &rng), TG_ERR_NULL);
    ck_assert_int_eq(tg_bidir_rnn_init(&net, ps, "bi", gru, 0, 3, 4, NULL, &rng), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "0 layers"));
    ck_assert_int_eq(tg_bidir_rnn_init(&net, ps, "bi", gru, TG_MAX_LAYERS + 1, 3, 4, NULL,
                                       &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_bidir_rnn_init(&net, ps, "bi", gru, 1, 3, 0, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_params_count(ps), 0);
    ck_assert_int_eq(tg_bidir_rnn_init(&net, ps, "bi", gru, 2, 3, 4, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_params_count(ps), 16);
    tg_bidir_rnn again;            /* the same names again: the cell's init refuses */
    ck_assert_int_eq(tg_bidir_rnn_init(&again, ps, "bi", gru, 1, 3, 4, NULL, &rng), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "bi.0.fwd"));

    tg_tape *tape = tg_tape_new();
    tg_tensor *x[2], *out[2];
    for (int t = 0; t < 2; t++)
        x[t] = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    ck_assert_int_eq(tg_bidir_rnn_forward(tape, &net, x, 0, out), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_bidir_rnn_forward(tape, NULL, x, 2, out), TG_ERR_NULL);
    tg_tape_reset(tape);
    for (int t = 0; t < 2; t++)               /* a width the first layer does not read */
        x[t] = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 5 });
    out[1] = x[0];
    ck_assert_int_eq(tg_bidir_rnn_forward(tape, &net, x, 2, out), TG_ERR_SHAPE);
    ck_assert_ptr_null(out[1]);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "torchgru"));
    tg_tape_free(tape);
    tg_bidir_rnn_deinit(&net);
    tg_bidir_rnn_deinit(&net);                /* twice is harmless */
    tg_params_free(ps);
}
END_TEST

/* ---- regularisers --------------------------------------------------------------- */

START_TEST(test_dropout_mask_statistics)
{
    tg_tape *tape = tg_tape_new();
    tg_rng a, b;
    tg_rng_seed(&a, 5);
    tg_rng_seed(&b, 5);
    const int64_t shape[2] = { 200, 50 };
    tg_tensor *m = tg_dropout_mask(tape, TG_F64, 2, shape, 0.3, &a);
    tg_tensor *same = tg_dropout_mask(tape, TG_F64, 2, shape, 0.3, &b);
    ck_assert_ptr_nonnull(m);
    int64_t zeros = tg_test_dropout_zeros(m, same, 1.0 / 0.7, 0);
    ck_assert_msg(fabs((double)zeros / 10000.0 - 0.3) < 0.02, "%lld zeros", (long long)zeros);
    ck_assert_ptr_null(m->grad);
    ck_assert_ptr_null(tg_dropout_mask(tape, TG_F64, 2, shape, 1.0, &a));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_dropout_mask(tape, TG_F64, 2, shape, 0.3, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_dropout_mask(tape, TG_F64, 2, (const int64_t[]){ -1, 2 }, 0.3, &a));
    ck_assert_int_ne(tg_tape_status(tape), TG_OK);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_zoneout_values)
{
    tg_tape *tape = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    tg_tensor *prev = new_f64(100, 40, NULL), *next = new_f64(100, 40, NULL);
    tg_tensor_fill_uniform(prev, &rng, -1, 1);
    tg_tensor_fill_uniform(next, &rng, -1, 1);
    tg_tensor *z = tg_zoneout(tape, prev, next, 0.25, true, &rng);
    ck_assert_ptr_nonnull(z);
    int64_t kept = 0;
    for (int64_t i = 0; i < z->numel; i++) {      /* each unit is its old or its new value */
        double v = tg_tensor_get(z, i), p = tg_tensor_get(prev, i), n = tg_tensor_get(next, i);
        ck_assert(v == p || v == n);
        kept += v == p && p != n;
    }
    ck_assert_msg(fabs((double)kept / 4000.0 - 0.25) < 0.03, "%lld kept", (long long)kept);
    tg_tensor *e = tg_zoneout(tape, prev, next, 0.25, false, NULL);  /* evaluation */
    for (int64_t i = 0; i < e->numel; i++)
        ck_close(tg_tensor_get(e, i), 0.25 * tg_tensor_get(prev, i) +
                 0.75 * tg_tensor_get(next, i), 1e-15);
    ck_assert_ptr_eq(tg_zoneout(tape, prev, next, 0.0, true, &rng), next);
    ck_assert_ptr_null(tg_zoneout(tape, prev, next, 0.3, true, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_zoneout(tape, prev, next, 1.0, true, &rng));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_zoneout(tape, NULL, next, 0.3, true, &rng));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_free(tape);
    tg_tensor_free(prev);
    tg_tensor_free(next);
}
END_TEST

START_TEST(test_weight_drop_values)
{
    tg_tape *tape = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *w = new_f64(300, 20, NULL);
    tg_tensor_fill_uniform(w, &rng, 0.5, 1.0);
    tg_tensor *d = tg_weight_drop(tape, w, 100, 150, 0.4, &rng);   /* rows 100..249 */
    ck_assert_ptr_nonnull(d);
    int64_t zeros = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        double v = tg_tensor_get(d, i), x = tg_tensor_get(w, i);
        int64_t row = i / 20;
        if (row < 100 || row >= 250)
            ck_assert_double_eq(v, x);                    /* outside the rows: untouched */
        else if (v == 0.0)
            zeros++;
        else
            ck_close(v, x / 0.6, 1e-15);
    }
    ck_assert_msg(fabs((double)zeros / 3000.0 - 0.4) < 0.03, "%lld zeros", (long long)zeros);
    ck_assert_ptr_eq(tg_weight_drop(tape, w, 0, 300, 0.0, &rng), w);
    ck_assert_ptr_null(tg_weight_drop(tape, w, 200, 101, 0.4, &rng));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_weight_drop(tape, NULL, 0, 1, 0.4, &rng));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_free(tape);
    tg_tensor_free(w);
}
END_TEST

/* A fixed-mask gradient check: zoneout of a tanh step and a weight-dropped product,
   their masks reseeded on every call. */
typedef struct reg_fixture {
    tg_tensor *w, *x, *h;
} reg_fixture;

static tg_tensor *reg_loss(tg_tape *tape, void *user)
{
    reg_fixture *f = user;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *w = tg_weight_drop(tape, f->w, 0, 3, 0.5, &rng);            /* rows 0..2 */
    tg_tensor *x = tg_mul(tape, f->x, tg_dropout_mask(tape, TG_F64, 2, f->x->shape, 0.3,
                                                      &rng));
    tg_tensor *next = tg_tanh(tape, tg_matmul(tape, x, w));                      /* (2,4) */
    tg_tensor *z = tg_zoneout(tape, f->h, next, 0.4, true, &rng);
    return tg_sum(tape, tg_mul(tape, z, z));
}

START_TEST(test_regularisers_gradcheck)
{
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    reg_fixture f = { new_f64(5, 4, NULL), new_f64(2, 5, NULL), new_f64(2, 4, NULL) };
    tg_tensor *all[3] = { f.w, f.x, f.h };
    for (int i = 0; i < 3; i++) {
        tg_tensor_fill_uniform(all[i], &rng, -1, 1);
        tg_tensor_requires_grad(all[i]);
    }
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck(all, 3, reg_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "worst %g", res.max_rel_err);
    for (int i = 0; i < 3; i++)
        tg_tensor_free(all[i]);
}
END_TEST

Suite *zoo_suite(void)
{
    int ncases = (int)(sizeof cellref_cases / sizeof cellref_cases[0]);
    int nbidir = (int)(sizeof cellref_bidirs / sizeof cellref_bidirs[0]);
    const tg_test_row rows[] = {
        TG_CASE("cells", 0),
        TG_LOOP(test_zoo_matches_torch, ncases),
        TG_LOOP(test_zoo_gradcheck, ncases),
        TG_LOOP(test_zoo_reports_gates, ncases),
        TG_LOOP(test_zoo_init, ncases),
        TG_LOOP(test_zoo_step_errors, ncases),
        TG_CASE("bidir", 0),
        TG_LOOP(test_bidir_matches_torch, nbidir),
        TG_TEST(test_bidir_gradcheck),
        TG_TEST(test_bidir_errors),
        TG_CASE("regularisers", 0),
        TG_TEST(test_dropout_mask_statistics),
        TG_TEST(test_zoneout_values),
        TG_TEST(test_weight_drop_values),
        TG_TEST(test_regularisers_gradcheck),
    };
    return TG_TEST_SUITE("zoo", rows);
}
