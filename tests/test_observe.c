/* tests/test_observe.c: the observe suite: what the cells report through tg_name (names,
   order, shapes, values against a hand computation) and the tg_recorder built on it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, L layers, V vocab. */

enum { B = 3, I = 4, H = 5, MAX_REPORTS = 64 };

/* ---- a plain observer that keeps copies of everything reported ------------------ */

typedef struct report {
    char name[32];
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    double *values;
} report;

typedef struct log_obs {
    int n;
    report r[MAX_REPORTS];
} log_obs;

static void log_observe(void *user, const char *name, const tg_tensor *t)
{
    log_obs *lo = user;
    ck_assert_int_lt(lo->n, MAX_REPORTS);
    report *r = &lo->r[lo->n++];
    ck_assert_uint_lt(strlen(name), sizeof r->name);
    strcpy(r->name, name);
    r->dtype = t->dtype;
    r->ndim = t->ndim;
    memcpy(r->shape, t->shape, sizeof r->shape);
    r->numel = t->numel;
    r->values = malloc((size_t)t->numel * sizeof *r->values);
    ck_assert_ptr_nonnull(r->values);
    for (int64_t i = 0; i < t->numel; i++)
        r->values[i] = tg_tensor_get(t, i);
}

static void log_free(log_obs *lo)
{
    for (int i = 0; i < lo->n; i++)
        free(lo->r[i].values);
    lo->n = 0;
}

static const report *log_find(const log_obs *lo, const char *name)
{
    for (int i = 0; i < lo->n; i++)
        if (strcmp(lo->r[i].name, name) == 0)
            return &lo->r[i];
    return NULL;
}

/* ---- the cells by hand: plain loops over the weights -------------------------------- */

static double sigm(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* out (B,H) = act(combine @ w + b) with combine (B,H+I) row-major and w (H+I,H). */
static void gate_by_hand(const tg_linear *l, const double *combine, int tanh_act, double *out)
{
    for (int b = 0; b < B; b++)
        for (int j = 0; j < H; j++) {
            double acc = tg_tensor_get(l->b, j);
            for (int k = 0; k < H + I; k++)
                acc += combine[b * (H + I) + k] * tg_tensor_get(l->w, (int64_t)k * H + j);
            out[b * H + j] = tanh_act ? tanh(acc) : sigm(acc);
        }
}

/* combine (B,H+I) = concat(h, x) along dim 1. */
static void concat_by_hand(const double *h, const double *x, double *combine)
{
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < H; k++)
            combine[b * (H + I) + k] = h[b * H + k];
        for (int k = 0; k < I; k++)
            combine[b * (H + I) + H + k] = x[b * I + k];
    }
}

typedef struct expected {
    const char *name;
    double v[B * H];
} expected;

/* The named results of one step of cell from x, h, c (all by hand), in report order;
   returns their count. */
static int cell_by_hand(int kind, const void *cell, const double *x, const double *h,
                        const double *c, expected *e)
{
    double combine[B * (H + I)];
    concat_by_hand(h, x, combine);
    switch (kind) {
    case 0: {                                                      /* rnn */
        const tg_rnn_cell *r = cell;
        e[0].name = "hidden";
        gate_by_hand(&r->layer, combine, 1, e[0].v);
        return 1;
    }
    case 1: {                                                      /* lstm */
        const tg_lstm_cell *l = cell;
        const char *names[6] = { "forget", "candidate", "input", "cell", "output", "hidden" };
        for (int i = 0; i < 6; i++)
            e[i].name = names[i];
        gate_by_hand(&l->forget, combine, 0, e[0].v);
        gate_by_hand(&l->candidate, combine, 1, e[1].v);
        gate_by_hand(&l->input, combine, 0, e[2].v);
        gate_by_hand(&l->output, combine, 0, e[4].v);
        for (int k = 0; k < B * H; k++) {
            e[3].v[k] = c[k] * e[0].v[k] + e[1].v[k] * e[2].v[k];
            e[5].v[k] = e[4].v[k] * tanh(e[3].v[k]);
        }
        return 6;
    }
    case 2: {                                                      /* gru */
        const tg_gru_cell *g = cell;
        const char *names[4] = { "update", "reset", "candidate", "hidden" };
        for (int i = 0; i < 4; i++)
            e[i].name = names[i];
        gate_by_hand(&g->update, combine, 0, e[0].v);
        gate_by_hand(&g->reset, combine, 0, e[1].v);
        double rh[B * H], reset_in[B * (H + I)];
        for (int k = 0; k < B * H; k++)
            rh[k] = e[1].v[k] * h[k];
        concat_by_hand(rh, x, reset_in);
        gate_by_hand(&g->candidate, reset_in, 1, e[2].v);
        for (int k = 0; k < B * H; k++)
            e[3].v[k] = (1.0 - e[0].v[k]) * h[k] + e[0].v[k] * e[2].v[k];
        return 4;
    }
    }
    return 0;
}

static void fill_random(double *v, int n, tg_rng *rng)
{
    for (int i = 0; i < n; i++)
        v[i] = 2.0 * tg_rng_uniform(rng) - 1.0;
}

static tg_tensor *tensor_2d(tg_dtype dtype, int64_t d0, int64_t d1, const double *values)
{
    const int64_t shape[2] = { d0, d1 };
    tg_tensor *t = tg_tensor_new(dtype, 2, shape);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tg_tensor_fill_values(t, values), TG_OK);
    return t;
}

/* ---- what each cell reports ----------------------------------------------------------- */

/* Loop index: cell kind (RNN, LSTM, GRU) x dtype (f64, f32). */
START_TEST(test_cell_reports_every_gate)
{
    int kind = _i % 3;
    tg_dtype dtype = _i < 3 ? TG_F64 : TG_F32;
    double tol = dtype == TG_F64 ? 1e-13 : 2e-6;
    tg_params *ps = tg_params_new(dtype);
    tg_rnn_stack s;
    tg_rng rng;
    tg_rng_seed(&rng, 11 + (uint64_t)_i);
    tg_init init = { TG_INIT_UNIFORM, 0.5, false };
    const tg_cell_type *type = tg_test_cell_type(tg_test_builtin_cells[kind]);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "c", type, 1, I, H, 0.0, &init, &rng), TG_OK);
    const void *cell = s.cells[0];

    double x[B * I], h[B * H], c[B * H];
    fill_random(x, B * I, &rng);
    fill_random(h, B * H, &rng);
    fill_random(c, B * H, &rng);
    tg_tensor *tx = tensor_2d(dtype, B, I, x), *th = tensor_2d(dtype, B, H, h);
    tg_tensor *tc = tensor_2d(dtype, B, H, c);
    /* the hand computation reads the values the tensors really hold (f32 rounding) */
    for (int k = 0; k < B * I; k++)
        x[k] = tg_tensor_get(tx, k);
    for (int k = 0; k < B * H; k++) {
        h[k] = tg_tensor_get(th, k);
        c[k] = tg_tensor_get(tc, k);
    }

    tg_tape *tape = tg_tape_new();
    log_obs lo = { 0 };
    tg_tape_set_observer(tape, log_observe, &lo);
    tg_tensor *h_new = NULL, *c_new = NULL;
    tg_tensor *state[2] = { th, tc }, *next[2] = { NULL, NULL };
    type->step(tape, cell, tx, state, next);
    h_new = next[0];
    c_new = type->nstate == 2 ? next[1] : NULL;
    ck_assert_msg(h_new != NULL, "%s", tg_tape_errmsg(tape));

    expected e[6];
    int n = cell_by_hand(kind, cell, x, h, c, e);
    ck_assert_int_eq(lo.n, n);
    for (int i = 0; i < n; i++) {
        const report *r = &lo.r[i];
        ck_assert_str_eq(r->name, e[i].name);
        ck_assert_int_eq(r->dtype, dtype);
        ck_assert_int_eq(r->ndim, 2);
        ck_assert_int_eq(r->shape[0], B);
        ck_assert_int_eq(r->shape[1], H);
        for (int k = 0; k < B * H; k++)
            ck_assert_msg(fabs(r->values[k] - e[i].v[k]) <= tol,
                          "%s[%d] = %.17g, by hand %.17g", r->name, k, r->values[k], e[i].v[k]);
    }
    /* what was reported as "hidden" (and "cell") is exactly what the step returned */
    const report *rh = log_find(&lo, "hidden");
    ck_assert_ptr_nonnull(rh);
    for (int k = 0; k < B * H; k++)
        ck_assert(rh->values[k] == tg_tensor_get(h_new, k));
    if (c_new) {
        const report *rc = log_find(&lo, "cell");
        ck_assert_ptr_nonnull(rc);
        for (int k = 0; k < B * H; k++)
            ck_assert(rc->values[k] == tg_tensor_get(c_new, k));
    }
    log_free(&lo);
    tg_tape_free(tape);
    tg_tensor_free(tx);
    tg_tensor_free(th);
    tg_tensor_free(tc);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_name_without_observer)
{
    tg_tape *tape = tg_tape_new();
    const int64_t shape[1] = { 3 };
    tg_tensor *t = tg_tensor_new(TG_F32, 1, shape);
    ck_assert_ptr_eq(tg_name(tape, t, "x"), t);      /* no observer: passes through */
    log_obs lo = { 0 };
    tg_tape_set_observer(tape, log_observe, &lo);
    ck_assert_ptr_null(tg_name(tape, NULL, "x"));    /* NULL passes, observer not called */
    ck_assert_int_eq(lo.n, 0);
    ck_assert_ptr_eq(tg_name(tape, t, "x"), t);
    ck_assert_int_eq(lo.n, 1);
    tg_tape_reset(tape);                             /* the observer survives a reset */
    tg_name(tape, t, "y");
    ck_assert_int_eq(lo.n, 2);
    tg_tape_set_observer(tape, NULL, NULL);
    tg_name(tape, t, "z");
    ck_assert_int_eq(lo.n, 2);
    log_free(&lo);
    tg_tensor_free(t);
    tg_tape_free(tape);
}
END_TEST

/* ---- the recorder --------------------------------------------------------------------- */

/* How many rows the series name of layer holds (the recorder must have it). */
static int64_t recorded_rows(const tg_recorder *rec, int layer, const char *name)
{
    tg_series se;
    ck_assert_int_eq(tg_recorder_get(rec, layer, name, &se), TG_OK);
    return se.rows;
}

/* Loop index: cell kind. A 3-layer stack stepped T times (inference mode): every series
   has T rows and row t of layer l's "hidden" ("cell") is exactly the state after step t. */
START_TEST(test_recorder_assigns_layers)
{
    enum { L = 3, T = 5, BS = 2 };
    int kind = _i;                                          /* rnn, lstm, gru */
    const tg_cell_type *type = tg_test_cell_type(tg_test_builtin_cells[kind]);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rnn_stack s;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_init init = { TG_INIT_UNIFORM, 0.6, false };
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "rnn", type, L, I, H, 0.0, &init, &rng), TG_OK);
    tg_stack_state *owned = tg_stack_state_new(&s, TG_F64, BS);
    ck_assert_ptr_nonnull(owned);
    tg_tape *tape = tg_tape_new();
    tg_recorder *rec = tg_recorder_new(L);
    ck_assert_ptr_nonnull(rec);
    tg_recorder_attach(rec, tape);

    static double h_want[T][L][BS * H], c_want[T][L][BS * H];
    for (int t = 0; t < T; t++) {
        double x[BS * I];
        fill_random(x, BS * I, &rng);
        tg_tensor *tx = tensor_2d(TG_F64, BS, I, x);
        tg_tape_reset(tape);
        tg_tape_set_grad_enabled(tape, false);
        tg_stack_state cur = *owned;
        ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, tx, &cur, false, NULL));
        for (int l = 0; l < L; l++)
            for (int k = 0; k < BS * H; k++) {
                h_want[t][l][k] = tg_tensor_get(cur.tensors[l][0], k);
                c_want[t][l][k] = cur.tensors[l][1] ? tg_tensor_get(cur.tensors[l][1], k) : 0.0;
            }
        ck_assert_int_eq(tg_stack_state_copy(owned, &cur), TG_OK);
        tg_tensor_free(tx);
    }
    ck_assert_int_eq(tg_recorder_status(rec), TG_OK);
    int names = kind == 0 ? 1 : kind == 1 ? 6 : 4;
    ck_assert_int_eq(tg_recorder_count(rec), L * names);
    for (int i = 0; i < tg_recorder_count(rec); i++) {
        tg_series se;
        ck_assert_int_eq(tg_recorder_series(rec, i, &se), TG_OK);
        ck_assert_int_eq(se.layer, i / names);  /* first reports come in layer order */
        ck_assert_int_eq(se.rows, T);
        ck_assert_int_eq(se.width, BS * H);
        ck_assert_int_eq(se.ndim, 2);
        ck_assert_int_eq(se.shape[0], BS);
        ck_assert_int_eq(se.shape[1], H);
        ck_assert_int_eq(se.dtype, TG_F64);
    }
    for (int l = 0; l < L; l++) {
        tg_series sh, sc;
        ck_assert_int_eq(tg_recorder_get(rec, l, "hidden", &sh), TG_OK);
        ck_assert_str_eq(sh.name, "hidden");
        ck_assert_int_eq(sh.layer, l);
        bool lstm = kind == 1;
        ck_assert_int_eq(tg_recorder_get(rec, l, "cell", &sc), lstm ? TG_OK : TG_ERR_ARG);
        for (int t = 0; t < T; t++)
            for (int k = 0; k < BS * H; k++) {
                ck_assert(tg_series_at(&sh, t, k) == h_want[t][l][k]);
                if (lstm)
                    ck_assert(tg_series_at(&sc, t, k) == c_want[t][l][k]);
            }
    }
    tg_series none;
    ck_assert_int_eq(tg_recorder_get(rec, L, "hidden", &none), TG_ERR_ARG);
    ck_assert_int_eq(tg_recorder_get(rec, 0, "nope", &none), TG_ERR_ARG);

    /* clear forgets the rows and starts again at layer 0 */
    tg_recorder_clear(rec);
    ck_assert_int_eq(recorded_rows(rec, 0, "hidden"), 0);
    tg_tape_reset(tape);
    double x[BS * I];
    fill_random(x, BS * I, &rng);
    tg_tensor *tx = tensor_2d(TG_F64, BS, I, x);
    tg_stack_state cur = *owned;
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, tx, &cur, false, NULL));
    for (int l = 0; l < L; l++) {
        tg_series sh;
        ck_assert_int_eq(tg_recorder_get(rec, l, "hidden", &sh), TG_OK);
        ck_assert_int_eq(sh.rows, 1);
        for (int k = 0; k < BS * H; k++)
            ck_assert(tg_series_at(&sh, 0, k) == tg_tensor_get(cur.tensors[l][0], k));
    }
    /* detached: nothing more is recorded */
    tg_recorder_attach(NULL, tape);
    tg_tape_reset(tape);
    cur = *owned;
    ck_assert_ptr_nonnull(tg_rnn_stack_step(tape, &s, tx, &cur, false, NULL));
    ck_assert_int_eq(recorded_rows(rec, 0, "hidden"), 1);

    tg_tensor_free(tx);
    tg_recorder_free(rec);
    tg_tape_free(tape);
    tg_stack_state_free(owned);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

/* A 2-layer char-LM's loss over (B,T) tokens, rebuilt from the recorded top-layer hidden
   states through the head by hand: the recorder saw exactly what the loss was made of. */
START_TEST(test_recorder_sees_charlm_loss)
{
    enum { V = 7, L = 2, BS = 2, T = 6, HH = 8 };
    tg_params *ps = tg_params_new(TG_F64);
    tg_charlm m;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_charlm_config cfg = { tg_test_cell_type("lstm"), V, L, HH, 0, 0.0 };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    int32_t in[BS * T], tgt[BS * T];
    for (int k = 0; k < BS * T; k++) {
        in[k] = (int32_t)tg_rng_below(&rng, V);
        tgt[k] = (int32_t)tg_rng_below(&rng, V);
    }
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F64, BS);
    tg_tape *tape = tg_tape_new();
    tg_recorder *rec = tg_recorder_new(L);
    tg_recorder_attach(rec, tape);
    tg_tensor *loss = tg_charlm_loss(tape, &m, in, tgt, BS, T, st, false, NULL);
    ck_assert_msg(loss != NULL, "%s", tg_tape_errmsg(tape));
    tg_series top;
    ck_assert_int_eq(tg_recorder_get(rec, L - 1, "hidden", &top), TG_OK);
    ck_assert_int_eq(top.rows, T);              /* one report per time step, (B,H) each */
    ck_assert_int_eq(top.width, BS * HH);
    double total = 0.0;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < BS; b++) {
            double logit[V], mx = -INFINITY, z = 0.0;
            for (int v = 0; v < V; v++) {
                logit[v] = tg_tensor_get(m.head.b, v);
                for (int j = 0; j < HH; j++)
                    logit[v] += tg_series_at(&top, t, b * HH + j) *
                                tg_tensor_get(m.head.w, (int64_t)j * V + v);
                mx = fmax(mx, logit[v]);
            }
            for (int v = 0; v < V; v++)
                z += exp(logit[v] - mx);
            total += mx + log(z) - logit[tgt[b * T + t]];
        }
    ck_close(tg_tensor_get(loss, 0), total / (BS * T), 1e-12);
    /* the final state carried out equals the last recorded row of every layer */
    for (int l = 0; l < L; l++) {
        tg_series sh;
        ck_assert_int_eq(tg_recorder_get(rec, l, "hidden", &sh), TG_OK);
        for (int k = 0; k < BS * HH; k++)
            ck_assert(tg_series_at(&sh, T - 1, k) == tg_tensor_get(st->tensors[l][0], k));
    }
    tg_recorder_free(rec);
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_recorder_errors)
{
    ck_assert_ptr_null(tg_recorder_new(0));
    ck_assert_ptr_null(tg_recorder_new(TG_MAX_LAYERS + 1));
    ck_assert_int_eq(tg_recorder_status(NULL), TG_ERR_NULL);
    ck_assert_int_eq(tg_recorder_count(NULL), 0);
    tg_series se;
    ck_assert_int_eq(tg_recorder_series(NULL, 0, &se), TG_ERR_NULL);
    ck_assert_int_eq(tg_recorder_get(NULL, 0, "x", &se), TG_ERR_NULL);
    tg_recorder_free(NULL);
    tg_recorder_clear(NULL);
    tg_recorder_observe(NULL, "x", NULL);

    tg_recorder *rec = tg_recorder_new(1);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(tg_recorder_series(rec, 0, &se), TG_ERR_ARG);
    ck_assert_int_eq(tg_recorder_series(rec, -1, &se), TG_ERR_ARG);
    const int64_t s3[1] = { 3 }, s4[1] = { 4 };
    tg_tensor *a = tg_tensor_new(TG_F32, 1, s3), *b = tg_tensor_new(TG_F32, 1, s4);
    tg_tensor *d = tg_tensor_new(TG_F64, 1, s3);
    tg_tensor_fill(a, 1.5);
    tg_recorder_observe(rec, NULL, a);         /* ignored */
    tg_recorder_observe(rec, "x", NULL);       /* ignored */
    ck_assert_int_eq(tg_recorder_count(rec), 0);
    for (int k = 0; k < 200; k++)              /* grows past its first allocation */
        tg_recorder_observe(rec, "x", a);
    ck_assert_int_eq(tg_recorder_get(rec, 0, "x", &se), TG_OK);
    ck_assert_int_eq(se.rows, 200);
    ck_assert(tg_series_at(&se, 199, 2) == 1.5);
    char longname[80];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    tg_recorder_observe(rec, longname, a);     /* longer than 63 bytes */
    ck_assert_int_eq(tg_recorder_status(rec), TG_ERR_ARG);
    tg_recorder_clear(rec);
    ck_assert_int_eq(tg_recorder_status(rec), TG_OK);
    tg_recorder_observe(rec, "x", b);          /* a new shape for "x" */
    ck_assert_int_eq(tg_recorder_status(rec), TG_ERR_SHAPE);
    tg_recorder_observe(rec, "y", a);          /* nothing more after an error */
    ck_assert_int_eq(tg_recorder_count(rec), 1);
    tg_recorder_clear(rec);
    tg_recorder_observe(rec, "x", d);          /* a new dtype */
    ck_assert_int_eq(tg_recorder_status(rec), TG_ERR_SHAPE);
    ck_assert_int_eq(recorded_rows(rec, 0, "x"), 0);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(d);
    tg_recorder_free(rec);
}
END_TEST

Suite *observe_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("observe", 0),
        TG_LOOP(test_cell_reports_every_gate, 6),
        TG_TEST(test_name_without_observer),
        TG_LOOP(test_recorder_assigns_layers, 3),
        TG_TEST(test_recorder_sees_charlm_loss),
        TG_TEST(test_recorder_errors),
    };
    return TG_TEST_SUITE("observe", rows);
}
