/* tests/test_cells.c: the cells suite: one cell's steps against a torch reference, the
   names its gates report, its error paths, and float64 gradient checks through time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/nn_ref.h"
#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

/* ---- the cells against the torch reference ------------------------------------- */

/* A cell built as an outside program would: public struct fields filled with
   caller-owned tensors (no tg_params). */
typedef struct ref_cell {
    const nnref_cell *r;
    tg_test_cell cell;
    tg_tensor *w[4], *b[4];
    tg_tensor *x[8], *h0, *c0;
} ref_cell;

static void ref_cell_build(ref_cell *rc, const nnref_cell *r)
{
    memset(rc, 0, sizeof *rc);
    rc->r = r;
    rc->cell.type = tg_test_cell_type(r->kind);
    tg_linear *gates[4];
    int n = tg_test_cell_gates(&rc->cell, gates);
    ck_assert_int_eq(n, r->ngates);
    for (int g = 0; g < n; g++) {
        rc->w[g] = tg_test_new_f64(2, r->H + r->I, r->H, r->w[g]);
        rc->b[g] = tg_test_new_f64(1, r->H, 1, r->b[g]);
        gates[g]->w = rc->w[g];
        gates[g]->b = rc->b[g];
    }
    if (strcmp(r->kind, "rnn") == 0) {
        rc->cell.u.rnn.input_size = r->I;
        rc->cell.u.rnn.hidden_size = r->H;
    } else if (strcmp(r->kind, "lstm") == 0) {
        rc->cell.u.lstm.input_size = r->I;
        rc->cell.u.lstm.hidden_size = r->H;
    } else {
        rc->cell.u.gru.input_size = r->I;
        rc->cell.u.gru.hidden_size = r->H;
    }
    for (int t = 0; t < r->T; t++)
        rc->x[t] = tg_test_new_f64(2, r->B, r->I, r->x + t * r->B * r->I);
    rc->h0 = tg_test_new_f64(2, r->B, r->H, r->h0);
    rc->c0 = r->c0 ? tg_test_new_f64(2, r->B, r->H, r->c0) : NULL;
}

static void ref_cell_free(ref_cell *rc)
{
    for (int g = 0; g < 4; g++) {
        tg_tensor_free(rc->w[g]);
        tg_tensor_free(rc->b[g]);
    }
    for (int t = 0; t < 8; t++)
        tg_tensor_free(rc->x[t]);
    tg_tensor_free(rc->h0);
    tg_tensor_free(rc->c0);
}

START_TEST(test_cell_matches_torch)
{
    const nnref_cell *r = &nnref_cells[_i];
    ref_cell rc;
    ref_cell_build(&rc, r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = rc.h0, *c = rc.c0, *loss = NULL;
    int64_t BH = (int64_t)r->B * r->H;
    for (int t = 0; t < r->T; t++) {
        h = tg_test_cell_step(tape, &rc.cell, rc.x[t], h, &c);
        ck_assert_msg(h != NULL, "%s step %d: %s", r->kind, t, tg_tape_errmsg(tape));
        ck_assert(tg_test_max_abs_diff(h, r->h + t * BH, false) < 1e-12);
        if (r->c)
            ck_assert(tg_test_max_abs_diff(c, r->c + t * BH, false) < 1e-12);
        const double *rt = r->r + t * BH;
        tg_tensor *rt_t = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ r->B, r->H });
        memcpy(rt_t->data, rt, (size_t)BH * sizeof(double));
        tg_tensor *term = tg_sum(tape, tg_mul(tape, h, rt_t));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    ck_close(tg_tensor_get(loss, 0), r->loss, 1e-12);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    for (int g = 0; g < r->ngates; g++) {
        ck_assert_msg(tg_test_max_abs_diff(rc.w[g], r->dw[g], true) < 1e-10, "%s d%s.w", r->kind,
                      r->gate[g]);
        ck_assert_msg(tg_test_max_abs_diff(rc.b[g], r->db[g], true) < 1e-10, "%s d%s.b", r->kind,
                      r->gate[g]);
    }
    for (int t = 0; t < r->T; t++)
        ck_assert(tg_test_max_abs_diff(rc.x[t], r->dx + t * r->B * r->I, true) < 1e-10);
    ck_assert(tg_test_max_abs_diff(rc.h0, r->dh0, true) < 1e-10);
    if (rc.c0)
        ck_assert(tg_test_max_abs_diff(rc.c0, r->dc0, true) < 1e-10);
    tg_tape_free(tape);
    ref_cell_free(&rc);
}
END_TEST

/* ---- observer: every gate is reported under its guide name ---------------------- */

typedef struct seen { char names[16][16]; int n; } seen;

static void record_name(void *user, const char *name, const tg_tensor *t)
{
    seen *s = user;
    ck_assert_ptr_nonnull(t);
    if (s->n < 16)
        snprintf(s->names[s->n++], 16, "%s", name);
}

START_TEST(test_cells_report_named_steps)
{
    static const char *const want[3][7] = {
        { "hidden" },
        { "forget", "candidate", "input", "cell", "output", "hidden" },
        { "update", "reset", "candidate", "hidden" },
    };
    static const int count[3] = { 1, 6, 4 };
    const nnref_cell *r = &nnref_cells[_i];
    ref_cell rc;
    ref_cell_build(&rc, r);
    tg_tape *tape = tg_tape_new();
    seen s = { .n = 0 };
    tg_tape_set_observer(tape, record_name, &s);
    tg_tensor *c = rc.c0;
    ck_assert_ptr_nonnull(tg_test_cell_step(tape, &rc.cell, rc.x[0], rc.h0, &c));
    ck_assert_int_eq(s.n, count[_i]);
    for (int k = 0; k < count[_i]; k++)
        ck_assert_str_eq(s.names[k], want[_i][k]);
    tg_tape_free(tape);
    ref_cell_free(&rc);
}
END_TEST

/* ---- cell step errors ----------------------------------------------------------- */

START_TEST(test_cell_step_errors)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    tg_lstm_cell lc;
    tg_gru_cell gc;
    tg_rnn_cell rc;
    ck_assert_int_eq(tg_lstm_cell_init(&lc, ps, "l", 3, 4, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_gru_cell_init(&gc, ps, "g", 3, 4, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_rnn_cell_init(&rc, ps, "r", 3, 4, NULL, &rng), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    tg_tensor *xbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 5 });
    tg_tensor *h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    tg_tensor *hbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 3, 4 });
    tg_tensor *h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });

    tg_lstm_state s = tg_lstm_cell_step(tape, &lc, xbad, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.h);
    ck_assert_ptr_null(s.c);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "lstm_cell_step"));
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "(2,5)"));
    /* sticky: a correct step after the error still returns NULL */
    s = tg_lstm_cell_step(tape, &lc, x, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.h);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_reset(tape);

    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    hbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 3, 4 });
    h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_gru_cell_step(tape, &gc, x, hbad));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "gru_cell_step"));
    tg_tape_reset(tape);
    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, &rc, x, h32));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_DTYPE);
    tg_tape_reset(tape);
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, NULL, h, h));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, &rc, NULL, h));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    s = tg_lstm_cell_step(tape, &lc, x, (tg_lstm_state){ h, NULL });
    ck_assert_ptr_null(s.h);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    s = tg_lstm_cell_step(tape, NULL, x, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.c);
    tg_tape_free(tape);
    tg_params_free(ps);
}
END_TEST

/* ---- gradient checks (float64) -------------------------------------------------- */

enum { GC_B = 2, GC_I = 3, GC_H = 4, GC_T = 4 };

typedef struct cell_fixture {
    tg_params *ps;
    tg_test_cell cell;
    tg_tensor *x[GC_T], *h0, *c0, *r[GC_T];
} cell_fixture;

/* sum over t of sum(h_t * r_t) (+ sum(c_t) for LSTM): every step feeds the loss */
static tg_tensor *cell_loss(tg_tape *tape, void *user)
{
    cell_fixture *f = user;
    tg_tensor *h = f->h0, *c = f->c0, *loss = NULL;
    for (int t = 0; t < GC_T; t++) {
        h = tg_test_cell_step(tape, &f->cell, f->x[t], h, &c);
        tg_tensor *term = tg_sum(tape, tg_mul(tape, h, f->r[t]));
        if (c)
            term = tg_add(tape, term, tg_scale(tape, tg_sum(tape, c), 0.1));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    return loss;
}

static void cell_fixture_init(cell_fixture *f, int kind)
{
    memset(f, 0, sizeof *f);
    tg_rng rng;
    tg_rng_seed(&rng, 100 + kind);
    f->ps = tg_params_new(TG_F64);
    tg_init init = { TG_INIT_UNIFORM, 0.7, false };
    f->cell.type = tg_test_cell_type(tg_test_builtin_cells[kind]);
    ck_assert_int_eq(f->cell.type->init(&f->cell.u, f->ps, "c", GC_I, GC_H, &init, &rng),
                     TG_OK);
    for (int t = 0; t < GC_T; t++) {
        f->x[t] = tg_test_new_f64(2, GC_B, GC_I, NULL);
        tg_tensor_fill_uniform(f->x[t], &rng, -1, 1);
        f->r[t] = tg_test_new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f->r[t], &rng, -1, 1);
    }
    f->h0 = tg_test_new_f64(2, GC_B, GC_H, NULL);
    tg_tensor_fill_uniform(f->h0, &rng, -0.5, 0.5);
    if (f->cell.type->nstate == 2) {
        f->c0 = tg_test_new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f->c0, &rng, -0.5, 0.5);
    }
}

static void cell_fixture_free(cell_fixture *f)
{
    for (int t = 0; t < GC_T; t++) {
        tg_tensor_free(f->x[t]);
        tg_tensor_free(f->r[t]);
    }
    tg_tensor_free(f->h0);
    tg_tensor_free(f->c0);
    tg_params_free(f->ps);
}

START_TEST(test_cell_gradcheck)
{
    cell_fixture f;
    cell_fixture_init(&f, _i);
    tg_gradcheck_result res;
    /* beyond the default rule, a relative error under 1e-7, which takes a step of 1e-5 */
    tg_gradcheck_opts opts = { .eps = 1e-5, .tolerance = 1e-7 };
    ck_assert_int_eq(tg_gradcheck_params(f.ps, cell_loss, &f, &opts, &res, NULL), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s params: worst %g",
                  tg_test_builtin_cells[_i], res.max_rel_err);
    ck_assert_int_eq(res.checked, tg_params_numel(f.ps));
    /* and the inputs: every x_t, h0 (and c0) */
    tg_tensor *ins[GC_T + 2];
    int n = 0;
    for (int t = 0; t < GC_T; t++)
        ins[n++] = f.x[t];
    ins[n++] = f.h0;
    if (f.c0)
        ins[n++] = f.c0;
    ck_assert_int_eq(tg_gradcheck(ins, n, cell_loss, &f, &opts, &res, NULL), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s inputs: worst %g",
                  tg_test_builtin_cells[_i], res.max_rel_err);
    cell_fixture_free(&f);
}
END_TEST

/* ---- the cell type registry ------------------------------------------------------ */

START_TEST(test_builtin_cell_types)
{
    const char *names[3] = { "rnn", "lstm", "gru" };
    const int nstate[3] = { 1, 2, 1 };
    ck_assert_int_ge(tg_cell_type_count(), 3);
    for (int i = 0; i < 3; i++) {
        const tg_cell_type *t = tg_cell_type_find(names[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_eq(tg_cell_type_at(i), t);        /* listed first, in this order */
        ck_assert_str_eq(t->name, names[i]);
        ck_assert_int_eq(t->nstate, nstate[i]);
        ck_assert(t->size > 0 && t->init && t->step);
    }
    /* every listed type is found under its own name, and no name is listed twice */
    for (int i = 0; i < tg_cell_type_count(); i++) {
        const tg_cell_type *t = tg_cell_type_at(i);
        ck_assert_ptr_eq(tg_cell_type_find(t->name), t);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(tg_cell_type_at(j)->name, t->name);
    }
    ck_assert_ptr_null(tg_cell_type_at(-1));
    ck_assert_ptr_null(tg_cell_type_at(tg_cell_type_count()));
    ck_assert_ptr_null(tg_cell_type_find("LSTM"));
    ck_assert_ptr_null(tg_cell_type_find(""));
    ck_assert_ptr_null(tg_cell_type_find(NULL));
}
END_TEST

/* A built-in type's step is its cell's step (and its init its cell's init), bit for bit. */
START_TEST(test_builtin_type_steps_like_its_cell)
{
    const nnref_cell *r = &nnref_cells[_i];
    ref_cell rc;
    ref_cell_build(&rc, r);
    const tg_cell_type *type = rc.cell.type;
    tg_tape *tape = tg_tape_new();
    tg_tensor *state[2] = { rc.h0, rc.c0 }, *next[2] = { NULL, NULL };
    type->step(tape, &rc.cell.u, rc.x[0], state, next);
    ck_assert_msg(next[0] != NULL, "%s", tg_tape_errmsg(tape));
    tg_tensor *h, *c = NULL;
    tg_params *pa = tg_params_new(TG_F64), *pb = tg_params_new(TG_F64);
    tg_rng ra, rb;
    tg_rng_seed(&ra, 9);
    tg_rng_seed(&rb, 9);
    tg_test_cell direct;
    tg_status st;
    if (strcmp(r->kind, "rnn") == 0) {
        h = tg_rnn_cell_step(tape, &rc.cell.u.rnn, rc.x[0], rc.h0);
        st = tg_rnn_cell_init(&direct.u.rnn, pb, "c", 3, 5, NULL, &rb);
    } else if (strcmp(r->kind, "lstm") == 0) {
        tg_lstm_state ls = tg_lstm_cell_step(tape, &rc.cell.u.lstm, rc.x[0],
                                             (tg_lstm_state){ rc.h0, rc.c0 });
        h = ls.h;
        c = ls.c;
        st = tg_lstm_cell_init(&direct.u.lstm, pb, "c", 3, 5, NULL, &rb);
    } else {
        h = tg_gru_cell_step(tape, &rc.cell.u.gru, rc.x[0], rc.h0);
        st = tg_gru_cell_init(&direct.u.gru, pb, "c", 3, 5, NULL, &rb);
    }
    ck_assert_int_eq(st, TG_OK);
    ck_assert(memcmp(h->data, next[0]->data, (size_t)h->numel * sizeof(double)) == 0);
    ck_assert_int_eq(type->nstate, c ? 2 : 1);
    if (c)
        ck_assert(memcmp(c->data, next[1]->data, (size_t)c->numel * sizeof(double)) == 0);

    void *mem = calloc(1, type->size);
    ck_assert_int_eq(type->init(mem, pa, "c", 3, 5, NULL, &ra), TG_OK);
    ck_assert_int_eq(tg_params_count(pa), tg_params_count(pb));
    for (int i = 0; i < tg_params_count(pa); i++) {
        ck_assert_str_eq(tg_params_name(pa, i), tg_params_name(pb, i));
        tg_tensor *a = tg_params_at(pa, i), *b = tg_params_at(pb, i);
        ck_assert(memcmp(a->data, b->data, (size_t)a->numel * sizeof(double)) == 0);
    }
    free(mem);
    tg_params_free(pa);
    tg_params_free(pb);
    tg_tape_free(tape);
    ref_cell_free(&rc);
}
END_TEST

static tg_status null_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                           int hidden_size, const tg_init *init, tg_rng *rng)
{
    (void)cell, (void)ps, (void)prefix, (void)input_size, (void)hidden_size, (void)init;
    (void)rng;
    return TG_OK;
}

static void null_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                      tg_tensor **next)
{
    (void)t, (void)cell, (void)x;
    next[0] = state[0];
}

/* Registers type and expects status with a reason containing what. */
static void expect_refused(const tg_cell_type *type, tg_status status, const char *what)
{
    tg_clear_error();
    ck_assert_int_eq(tg_cell_type_register(type), status);
    ck_assert_msg(strstr(tg_last_error(), what) != NULL, "\"%s\" lacks \"%s\"",
                  tg_last_error(), what);
}

START_TEST(test_cell_type_register)
{
    static const tg_cell_type mine = { "my_cell2", 1, 8, null_init, null_step };
    int before = tg_cell_type_count();
    ck_assert_ptr_null(tg_cell_type_find("my_cell2"));
    ck_assert_int_eq(tg_cell_type_register(&mine), TG_OK);
    ck_assert_ptr_eq(tg_cell_type_find("my_cell2"), &mine);
    ck_assert_int_eq(tg_cell_type_count(), before + 1);
    ck_assert_ptr_eq(tg_cell_type_at(before), &mine);

    expect_refused(&mine, TG_ERR_ARG, "\"my_cell2\" is taken");
    tg_cell_type t = mine;
    t.name = "lstm";
    expect_refused(&t, TG_ERR_ARG, "\"lstm\" is taken");
    expect_refused(NULL, TG_ERR_NULL, "NULL type");
    const char *bad[] = { "", "LSTM", "my-cell", "my cell", "caf\xc3\xa9",
                          "a123456789012345678901234567890123456789012345678901234567890123" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t.name = bad[i];
        expect_refused(&t, TG_ERR_ARG, "[a-z0-9_]");
    }
    t.name = NULL;
    expect_refused(&t, TG_ERR_ARG, "no name");
    t = mine;
    t.name = "fresh";
    t.nstate = 0;
    expect_refused(&t, TG_ERR_ARG, "nstate 0");
    t.nstate = TG_MAX_CELL_STATE + 1;
    expect_refused(&t, TG_ERR_ARG, "nstate 5");
    t.nstate = 1;
    t.size = 0;
    expect_refused(&t, TG_ERR_ARG, "size 0");
    t.size = 8;
    t.init = NULL;
    expect_refused(&t, TG_ERR_ARG, "no init");
    t.init = null_init;
    t.step = NULL;
    expect_refused(&t, TG_ERR_ARG, "no step");
    ck_assert_int_eq(tg_cell_type_count(), before + 1);   /* nothing refused was added */
    ck_assert_ptr_null(tg_cell_type_find("fresh"));
}
END_TEST

START_TEST(test_cell_type_registry_full)
{
    static char names[TG_MAX_CELL_TYPES + 1][24];   /* "full_" and any int */
    static tg_cell_type types[TG_MAX_CELL_TYPES + 1];
    for (int i = 0; i <= TG_MAX_CELL_TYPES; i++) {
        snprintf(names[i], sizeof names[i], "full_%d", i);
        types[i] = (tg_cell_type){ names[i], 1, 8, null_init, null_step };
    }
    for (int i = 0; i < TG_MAX_CELL_TYPES; i++)
        ck_assert_int_eq(tg_cell_type_register(&types[i]), TG_OK);
    expect_refused(&types[TG_MAX_CELL_TYPES], TG_ERR_ARG, "registry is full");
    ck_assert_ptr_eq(tg_cell_type_find("full_63"), &types[63]);
}
END_TEST

Suite *cells_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("torch", 0),
        TG_LOOP(test_cell_matches_torch, 3),
        TG_LOOP(test_cells_report_named_steps, 3),
        TG_TEST(test_cell_step_errors),
        TG_CASE("types", 0),
        TG_TEST(test_builtin_cell_types),
        TG_LOOP(test_builtin_type_steps_like_its_cell, 3),
        TG_TEST(test_cell_type_register),
        TG_TEST(test_cell_type_registry_full),
        TG_CASE("gradcheck", 60),
        TG_LOOP(test_cell_gradcheck, 3),
    };
    return TG_TEST_SUITE("cells", rows);
}
