/* tests/test_optim.c: optimizers against torch.optim trajectories, hand-computed steps,
   clipping, schedules, invalid configs and non-finite gradients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/optim_ref.h"
#include "tests/ref/schedule_ref.h"
#include "tests/tests.h"

#define NCASES ((int)(sizeof optim_ref_cases / sizeof optim_ref_cases[0]))

/* "w" (3,4) and "b" (5) from the reference's initial values. */
static tg_params *ref_params(tg_dtype dt)
{
    tg_params *ps = tg_params_new(dt);
    ck_assert_ptr_nonnull(ps);
    ck_assert_ptr_nonnull(tg_params_add(ps, "w", 2, (const int64_t[]){ 3, 4 }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "b", 1, (const int64_t[]){ 5 }));
    ck_assert_int_eq(tg_params_numel(ps), OPTIM_REF_NUMEL);
    int64_t off = 0;
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        for (int64_t k = 0; k < t->numel; k++)
            tg_tensor_set(t, k, optim_ref_init[off + k]);
        off += t->numel;
    }
    return ps;
}

/* Sets the gradients (in parameter order) from a flat table of doubles. */
static void set_grads(tg_params *ps, const double *g)
{
    int64_t off = 0;
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        for (int64_t k = 0; k < t->numel; k++) {
            if (t->dtype == TG_F64)
                ((double *)t->grad)[k] = g[off + k];
            else
                ((float *)t->grad)[k] = (float)g[off + k];
        }
        off += t->numel;
    }
}

static double param_value(tg_params *ps, int64_t flat)
{
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        if (flat < t->numel)
            return tg_tensor_get(t, flat);
        flat -= t->numel;
    }
    return NAN;
}

/* Runs reference case c for 12 steps in dtype dt; returns the largest |ours - torch|
   over all parameters and steps, and the largest relative error of the clip norms. */
static double run_case(const optim_ref_case *c, tg_dtype dt, double *norm_err)
{
    tg_params *ps = ref_params(dt);
    tg_optim *opt = tg_optim_new(ps, &c->cfg);
    ck_assert_msg(opt != NULL, "%s: tg_optim_new failed", c->name);
    double max_err = 0.0;
    *norm_err = 0.0;
    for (int t = 0; t < OPTIM_REF_STEPS; t++) {
        set_grads(ps, optim_ref_grads[t]);
        if (c->clip > 0.0) {
            double n = tg_clip_grad_norm(ps, c->clip);
            double e = fabs(n - c->norm[t]) / c->norm[t];
            if (e > *norm_err)
                *norm_err = e;
        }
        if (c->gamma > 0.0)
            tg_optim_set_lr(opt, c->cfg.lr * pow(c->gamma, (double)t));
        ck_assert_int_eq(tg_optim_step(opt), TG_OK);
        for (int64_t k = 0; k < OPTIM_REF_NUMEL; k++) {
            double e = fabs(param_value(ps, k) - c->param[t][k]);
            if (!(e <= max_err))
                max_err = e;
        }
    }
    ck_assert_int_eq(tg_optim_steps(opt), OPTIM_REF_STEPS);
    tg_optim_free(opt);
    tg_params_free(ps);
    return max_err;
}

/* One test per reference case (loop test): float64 must agree with torch to 1e-10.
   TG_OPTIM_REPORT=1 in the environment prints the errors measured. */
START_TEST(test_torch_reference_f64)
{
    const optim_ref_case *c = &optim_ref_cases[_i];
    double norm_err;
    double err = run_case(c, TG_F64, &norm_err);
    if (getenv("TG_OPTIM_REPORT"))
        printf("optim-ref %-32s max|err| %.3g  clip-norm rel err %.3g\n", c->name, err,
               norm_err);
    ck_assert_msg(err <= 1e-10, "%s: max |error| vs torch %.3g > 1e-10", c->name, err);
    ck_assert_msg(norm_err <= 1e-12, "%s: clip norm rel error %.3g", c->name, norm_err);
}
END_TEST

/* float32 parameters follow the same trajectories to float precision. */
START_TEST(test_torch_reference_f32)
{
    const optim_ref_case *c = &optim_ref_cases[_i];
    double norm_err;
    double err = run_case(c, TG_F32, &norm_err);
    ck_assert_msg(err <= 2e-5, "%s (f32): max |error| vs torch %.3g", c->name, err);
    ck_assert_msg(norm_err <= 1e-6, "%s (f32): clip norm rel error %.3g", c->name, norm_err);
}
END_TEST

/* A single scalar parameter p with gradient g, for the hand-computed checks. */
static tg_params *scalar_param(double p)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_tensor *t = tg_params_add(ps, "p", 1, (const int64_t[]){ 1 });
    ck_assert_ptr_nonnull(t);
    tg_tensor_set(t, 0, p);
    return ps;
}

static double step_scalar(tg_params *ps, tg_optim *opt, double g)
{
    tg_tensor *t = tg_params_at(ps, 0);
    ((double *)t->grad)[0] = g;
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    return tg_tensor_get(t, 0);
}

/* Steps a scalar parameter starting at p under config c with the gradients g[0..n) and
   checks its value after each step against want (to 1e-15). */
static void expect_steps(const tg_optim_config *c, double p, int n, const double *g,
                         const double *want)
{
    tg_params *ps = scalar_param(p);
    tg_optim *opt = tg_optim_new(ps, c);
    for (int i = 0; i < n; i++)
        ck_close(step_scalar(ps, opt, g[i]), want[i], 1e-15);
    tg_optim_free(opt);
    tg_params_free(ps);
}

START_TEST(test_sgd_by_hand)
{
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    c.lr = 0.1;
    c.momentum = 0.9;
    /* step 1: buf = g = 0.5, p = 1 - 0.1*0.5; step 2: buf = 0.9*0.5 + 0.5 = 0.95 */
    expect_steps(&c, 1.0, 2, (const double[]){ 0.5, 0.5 },
                 (const double[]){ 0.95, 0.95 - 0.1 * 0.95 });

    /* weight decay: d = g + wd*p = 0.5 + 0.1*2 = 0.7, p = 2 - 0.1*0.7 */
    c = tg_optim_defaults(TG_SGD);
    c.lr = 0.1;
    c.weight_decay = 0.1;
    expect_steps(&c, 2.0, 1, (const double[]){ 0.5 }, (const double[]){ 2.0 - 0.07 });
}
END_TEST

START_TEST(test_adam_adamw_by_hand)
{
    /* Adam's first step: m^ = g, v^ = g^2, so p -= lr * g / (|g| + eps) */
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    c.lr = 0.1;
    expect_steps(&c, 1.0, 1, (const double[]){ 2.0 },
                 (const double[]){ 1.0 - 0.1 * 2.0 / (2.0 + 1e-8) });

    /* AdamW: p = p*(1 - lr*wd) first, then the same step */
    c = tg_optim_defaults(TG_ADAMW);
    c.lr = 0.1;
    c.weight_decay = 0.5;
    expect_steps(&c, 1.0, 1, (const double[]){ -2.0 },
                 (const double[]){ 0.95 + 0.1 * 2.0 / (2.0 + 1e-8) });
}
END_TEST

START_TEST(test_rmsprop_adagrad_by_hand)
{
    /* RMSprop: sq = (1-alpha) g^2, p -= lr g / (sqrt(sq) + eps) */
    tg_optim_config c = tg_optim_defaults(TG_RMSPROP);
    c.lr = 0.01;
    c.alpha = 0.75;
    c.eps = 0.0;
    expect_steps(&c, 1.0, 1, (const double[]){ 3.0 }, (const double[]){ 1.0 - 0.01 * 3.0 / 1.5 });

    /* Adagrad: sum = 1 + g^2 = 10, clr = lr on step 1 and lr/(1 + lr_decay) on step 2 */
    c = tg_optim_defaults(TG_ADAGRAD);
    c.lr = 0.1;
    c.eps = 0.0;
    c.lr_decay = 1.0;
    c.initial_accumulator_value = 1.0;
    double p1 = 1.0 - 0.1 * 3.0 / sqrt(10.0);
    expect_steps(&c, 1.0, 2, (const double[]){ 3.0, 4.0 },
                 (const double[]){ p1, p1 - 0.05 * 4.0 / sqrt(26.0) });
}
END_TEST

START_TEST(test_names_and_defaults)
{
    const char *names[] = { "sgd", "adam", "adamw", "rmsprop", "adagrad" };
    for (int k = 0; k < 5; k++) {
        ck_assert_str_eq(tg_optim_kind_name((tg_optim_kind)k), names[k]);
        ck_assert_int_eq(tg_optim_kind_parse(names[k]), k);
    }
    ck_assert_int_eq(tg_optim_kind_parse("lbfgs"), -1);
    ck_assert_int_eq(tg_optim_kind_parse(NULL), -1);
    ck_assert_str_eq(tg_optim_kind_name((tg_optim_kind)42), "unknown");
    ck_assert_str_eq(tg_optim_kind_name(TG_OPTIM_KIND_COUNT), "unknown");

    tg_optim_config a = tg_optim_defaults(TG_ADAM);
    ck_assert(a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8);
    ck_assert(a.weight_decay == 0.0);
    tg_optim_config w = tg_optim_defaults(TG_ADAMW);
    ck_assert(w.weight_decay == 1e-2 && w.lr == 1e-3);
    tg_optim_config r = tg_optim_defaults(TG_RMSPROP);
    ck_assert(r.lr == 1e-2 && r.alpha == 0.99 && r.eps == 1e-8 && !r.centered);
    tg_optim_config g = tg_optim_defaults(TG_ADAGRAD);
    ck_assert(g.lr == 1e-2 && g.eps == 1e-10 && g.lr_decay == 0.0);
    tg_optim_config s = tg_optim_defaults(TG_SGD);
    ck_assert(s.lr == 1e-2 && s.momentum == 0.0 && !s.nesterov);
    for (int k = 0; k < 5; k++) {
        tg_optim_config d = tg_optim_defaults((tg_optim_kind)k);
        ck_assert_int_eq(tg_optim_config_check(&d, NULL, 0), TG_OK);
    }
}
END_TEST

START_TEST(test_invalid_configs)
{
    tg_params *ps = scalar_param(1.0);
    struct { tg_optim_kind kind; const char *field; double v; bool nesterov; } bad[] = {
        { TG_SGD, "lr", -0.1, false },        { TG_SGD, "lr", NAN, false },
        { TG_SGD, "momentum", -0.5, false },  { TG_SGD, "weight_decay", -1.0, false },
        { TG_SGD, "momentum", 0.0, true },    { TG_SGD, "dampening", 0.1, true },
        { TG_ADAM, "beta1", 1.0, false },     { TG_ADAM, "beta2", -0.1, false },
        { TG_ADAM, "eps", -1e-8, false },     { TG_ADAMW, "beta2", 1.5, false },
        { TG_ADAMW, "lr", INFINITY, false },  { TG_RMSPROP, "alpha", -0.5, false },
        { TG_RMSPROP, "momentum", -1.0, false }, { TG_ADAGRAD, "lr_decay", -0.1, false },
        { TG_ADAGRAD, "initial_accumulator_value", -1.0, false },
        { TG_ADAGRAD, "eps", NAN, false },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_optim_config c = tg_optim_defaults(bad[i].kind);
        c.nesterov = bad[i].nesterov;
        if (bad[i].nesterov)
            c.momentum = 0.9;
        double *f = !strcmp(bad[i].field, "lr") ? &c.lr
                  : !strcmp(bad[i].field, "momentum") ? &c.momentum
                  : !strcmp(bad[i].field, "weight_decay") ? &c.weight_decay
                  : !strcmp(bad[i].field, "dampening") ? &c.dampening
                  : !strcmp(bad[i].field, "beta1") ? &c.beta1
                  : !strcmp(bad[i].field, "beta2") ? &c.beta2
                  : !strcmp(bad[i].field, "eps") ? &c.eps
                  : !strcmp(bad[i].field, "alpha") ? &c.alpha
                  : !strcmp(bad[i].field, "lr_decay") ? &c.lr_decay
                  : &c.initial_accumulator_value;
        *f = bad[i].v;
        char msg[160] = "";
        ck_assert_int_eq(tg_optim_config_check(&c, msg, sizeof msg), TG_ERR_ARG);
        ck_assert_msg(strstr(msg, bad[i].field) != NULL && !strchr(msg, '\n'),
                      "case %zu: message '%s' does not name %s", i, msg, bad[i].field);
        ck_assert_str_eq(tg_last_error(), msg);
        ck_assert_ptr_null(tg_optim_new(ps, &c));
        ck_assert_msg(strncmp(tg_last_error(), "optim_new: ", 11) == 0
                      && strstr(tg_last_error(), msg) != NULL,
                      "case %zu: tg_optim_new says '%s'", i, tg_last_error());
        ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
    }
    {   /* the reason names the kind and the rule */
        tg_optim_config c = tg_optim_defaults(TG_ADAM);
        c.beta2 = 1.0;
        ck_assert_ptr_null(tg_optim_new(ps, &c));
        ck_assert_str_eq(tg_last_error(),
                         "optim_new: adam: invalid beta2 1 (must be in [0, 1))");
        char msg[64] = "stale";
        c = tg_optim_defaults(TG_ADAM);
        ck_assert_int_eq(tg_optim_config_check(&c, msg, sizeof msg), TG_OK);
        ck_assert_str_eq(msg, "");
    }
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    c.kind = (tg_optim_kind)9;
    ck_assert_int_eq(tg_optim_config_check(&c, NULL, 0), TG_ERR_ARG);
    ck_assert_ptr_null(tg_optim_new(ps, &c));
    ck_assert_str_eq(tg_last_error(), "optim_new: unknown optimizer kind 9");
    ck_assert_int_eq(tg_optim_config_check(NULL, NULL, 0), TG_ERR_NULL);
    ck_assert_str_eq(tg_last_error(), "optimizer config is NULL");
    c = tg_optim_defaults(TG_SGD);
    ck_assert_ptr_null(tg_optim_new(NULL, &c));
    ck_assert_str_eq(tg_last_error(), "optim_new: params is NULL");
    ck_assert_ptr_null(tg_optim_new(ps, NULL));
    ck_assert_str_eq(tg_last_error(), "optim_new: config is NULL");
    ck_assert_int_eq(tg_last_status(), TG_ERR_NULL);
    /* fields of other kinds are not checked: Adam ignores a negative momentum */
    c = tg_optim_defaults(TG_ADAM);
    c.momentum = -1.0;
    ck_assert_int_eq(tg_optim_config_check(&c, NULL, 0), TG_OK);
    tg_params_free(ps);
}
END_TEST

/* A NaN or inf gradient: TG_ERR_NONFINITE, parameters, state and step count untouched. */
START_TEST(test_nonfinite_step)
{
    for (int k = 0; k < 5; k++) {
        tg_params *ps = ref_params(k % 2 ? TG_F32 : TG_F64);
        tg_optim_config c = tg_optim_defaults((tg_optim_kind)k);
        c.momentum = k == TG_SGD || k == TG_RMSPROP ? 0.9 : 0.0;
        tg_optim *opt = tg_optim_new(ps, &c);
        set_grads(ps, optim_ref_grads[0]);
        ck_assert_int_eq(tg_optim_step(opt), TG_OK);

        tg_tensor *w = tg_params_at(ps, 0), *b = tg_params_at(ps, 1);
        size_t wb = (size_t)w->numel * tg_dtype_size(w->dtype);
        size_t bb = (size_t)b->numel * tg_dtype_size(b->dtype);
        void *w0 = malloc(wb), *b0 = malloc(bb);
        memcpy(w0, w->data, wb);
        memcpy(b0, b->data, bb);
        set_grads(ps, optim_ref_grads[1]);
        if (b->dtype == TG_F64)
            ((double *)b->grad)[4] = k % 3 ? NAN : INFINITY;
        else
            ((float *)b->grad)[4] = k % 3 ? NAN : -INFINITY;
        ck_assert_int_eq(tg_optim_step(opt), TG_ERR_NONFINITE);
        ck_assert_str_eq(tg_last_error(), "optim_step: the gradient of 'b' holds NaN or inf "
                         "(nothing updated)");
        ck_assert_int_eq(memcmp(w0, w->data, wb), 0);
        ck_assert_int_eq(memcmp(b0, b->data, bb), 0);
        ck_assert_int_eq(tg_optim_steps(opt), 1);

        /* the state was not touched either: the next good step equals the one a twin
           optimizer that never saw the NaN takes */
        tg_params *ps2 = ref_params(w->dtype);
        tg_optim *opt2 = tg_optim_new(ps2, &c);
        set_grads(ps2, optim_ref_grads[0]);
        ck_assert_int_eq(tg_optim_step(opt2), TG_OK);
        set_grads(ps, optim_ref_grads[2]);
        set_grads(ps2, optim_ref_grads[2]);
        ck_assert_int_eq(tg_optim_step(opt), TG_OK);
        ck_assert_int_eq(tg_optim_step(opt2), TG_OK);
        ck_assert_int_eq(memcmp(w->data, tg_params_at(ps2, 0)->data, wb), 0);
        ck_assert_int_eq(memcmp(b->data, tg_params_at(ps2, 1)->data, bb), 0);
        free(w0);
        free(b0);
        tg_optim_free(opt2);
        tg_params_free(ps2);
        tg_optim_free(opt);
        tg_params_free(ps);
    }
}
END_TEST

START_TEST(test_step_errors_and_lr)
{
    ck_assert_int_eq(tg_optim_step(NULL), TG_ERR_NULL);
    ck_assert_str_eq(tg_last_error(), "optim_step: optimizer is NULL");
    tg_optim_free(NULL);
    ck_assert(tg_optim_get_lr(NULL) == 0.0);
    ck_assert_ptr_null(tg_optim_get_config(NULL));

    tg_params *ps = ref_params(TG_F64);
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    tg_optim *opt = tg_optim_new(ps, &c);
    ck_assert(tg_optim_get_lr(opt) == 1e-3);
    tg_optim_set_lr(opt, 0.25);
    ck_assert(tg_optim_get_lr(opt) == 0.25);
    ck_assert(tg_optim_get_config(opt)->lr == 0.25);
    set_grads(ps, optim_ref_grads[0]);
    double before = tg_tensor_get(tg_params_at(ps, 0), 0);
    tg_optim_set_lr(opt, -1.0);
    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_ARG);
    ck_assert_str_eq(tg_last_error(), "optim_step: invalid lr -1 (must be finite and >= 0)");
    tg_optim_set_lr(opt, NAN);
    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_ARG);
    ck_assert(tg_tensor_get(tg_params_at(ps, 0), 0) == before);
    ck_assert_int_eq(tg_optim_steps(opt), 0);
    tg_optim_set_lr(opt, 0.01);
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    /* a parameter added after the optimizer was made */
    ck_assert_ptr_nonnull(tg_params_add(ps, "late", 1, (const int64_t[]){ 2 }));
    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_last_error(), "optim_step: parameters were added after the "
                     "optimizer was made (2 then, 3 now)");
    tg_optim_free(opt);
    tg_params_free(ps);

    /* an empty collection steps (nothing to do) */
    ps = tg_params_new(TG_F32);
    opt = tg_optim_new(ps, &c);
    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    ck_assert(tg_clip_grad_norm(ps, 1.0) == 0.0);
    tg_optim_free(opt);
    tg_params_free(ps);
}
END_TEST

/* Large parameters take the OpenMP path: results must not depend on the thread count. */
START_TEST(test_thread_count_invariance)
{
    const int64_t n = 300001;
    void *result[2][2];
    double norms[2];
    for (int run = 0; run < 2; run++) {
        tg_set_num_threads(run ? 2 : 1);
        tg_params *ps = tg_params_new(TG_F32);
        tg_tensor *a = tg_params_add(ps, "a", 1, &n);
        tg_tensor *b = tg_params_add(ps, "b", 2, (const int64_t[]){ 7, 40001 });
        tg_rng rng;
        tg_rng_seed(&rng, 7);
        tg_tensor_fill_uniform(a, &rng, -1, 1);
        tg_tensor_fill_uniform(b, &rng, -1, 1);
        tg_optim_config c = tg_optim_defaults(TG_RMSPROP);
        c.centered = true;
        c.momentum = 0.5;
        tg_optim *opt = tg_optim_new(ps, &c);
        norms[run] = 0;
        for (int s = 0; s < 3; s++) {
            float *ga = a->grad, *gb = b->grad;
            for (int64_t i = 0; i < a->numel; i++)
                ga[i] = (float)(tg_rng_uniform(&rng) - 0.5);
            for (int64_t i = 0; i < b->numel; i++)
                gb[i] = (float)(tg_rng_uniform(&rng) - 0.5);
            norms[run] += tg_clip_grad_norm(ps, 100.0);
            ck_assert_int_eq(tg_optim_step(opt), TG_OK);
        }
        result[run][0] = malloc((size_t)a->numel * 4);
        result[run][1] = malloc((size_t)b->numel * 4);
        memcpy(result[run][0], a->data, (size_t)a->numel * 4);
        memcpy(result[run][1], b->data, (size_t)b->numel * 4);
        tg_optim_free(opt);
        tg_params_free(ps);
    }
    ck_assert(norms[0] == norms[1]);
    ck_assert_int_eq(memcmp(result[0][0], result[1][0], (size_t)n * 4), 0);
    ck_assert_int_eq(memcmp(result[0][1], result[1][1], (size_t)7 * 40001 * 4), 0);
    for (int r = 0; r < 2; r++) {
        free(result[r][0]);
        free(result[r][1]);
    }
}
END_TEST

/* ---- clipping ----------------------------------------------------------------- */

START_TEST(test_clip_norm_values)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_tensor *a = tg_params_add(ps, "a", 1, (const int64_t[]){ 1 });
    tg_tensor *b = tg_params_add(ps, "b", 1, (const int64_t[]){ 1 });
    double *ga = a->grad, *gb = b->grad;
    /* 3-4-5: norm 5 over two tensors, clipped to 1 */
    ga[0] = 3.0;
    gb[0] = -4.0;
    ck_assert(tg_clip_grad_norm(ps, 1.0) == 5.0);
    ck_close(ga[0], 3.0 / (5.0 + 1e-6), 1e-16);
    ck_close(gb[0], -4.0 / (5.0 + 1e-6), 1e-16);
    /* below max_norm: returned, nothing changes */
    ga[0] = 0.3;
    gb[0] = 0.4;
    ck_close(tg_clip_grad_norm(ps, 1.0), 0.5, 1e-16);
    ck_assert(ga[0] == 0.3 && gb[0] == 0.4);
    /* a negative or NaN max_norm applies nothing */
    ck_close(tg_clip_grad_norm(ps, -1.0), 0.5, 1e-16);
    ck_close(tg_clip_grad_norm(ps, NAN), 0.5, 1e-16);
    ck_assert(ga[0] == 0.3 && gb[0] == 0.4);
    /* max_norm 0 zeroes the gradients */
    tg_clip_grad_norm(ps, 0.0);
    ck_assert(ga[0] == 0.0 && gb[0] == 0.0);
    /* all-zero gradients: norm 0, unchanged */
    ck_assert(tg_clip_grad_norm(ps, 1.0) == 0.0);
    ck_assert(tg_clip_grad_norm(NULL, 1.0) == 0.0);
    tg_params_free(ps);
}
END_TEST

/* A NaN or inf gradient gives a non-finite norm, which is returned and not applied. */
START_TEST(test_clip_norm_nonfinite)
{
    for (int dt = 0; dt < 2; dt++) {
        tg_params *ps = ref_params(dt ? TG_F64 : TG_F32);
        set_grads(ps, optim_ref_grads[4]);
        tg_tensor *w = tg_params_at(ps, 0);
        if (w->dtype == TG_F64)
            ((double *)w->grad)[5] = NAN;
        else
            ((float *)w->grad)[5] = NAN;
        size_t gb = (size_t)w->numel * tg_dtype_size(w->dtype);
        void *g0 = malloc(gb);
        memcpy(g0, w->grad, gb);
        tg_tensor *b = tg_params_at(ps, 1);
        double b0 = tg_tensor_grad_get(b, 0);
        ck_assert(isnan(tg_clip_grad_norm(ps, 1.0)));
        ck_assert_int_eq(memcmp(g0, w->grad, gb), 0);
        ck_assert(tg_tensor_grad_get(b, 0) == b0);
        if (w->dtype == TG_F64)
            ((double *)w->grad)[5] = INFINITY;
        else
            ((float *)w->grad)[5] = INFINITY;
        ck_assert(isinf(tg_clip_grad_norm(ps, 1.0)));
        ck_assert(tg_tensor_grad_get(b, 0) == b0);
        /* and the optimizer then refuses the step */
        tg_optim_config c = tg_optim_defaults(TG_SGD);
        tg_optim *opt = tg_optim_new(ps, &c);
        ck_assert_int_eq(tg_optim_step(opt), TG_ERR_NONFINITE);
        tg_optim_free(opt);
        free(g0);
        tg_params_free(ps);
    }
}
END_TEST

START_TEST(test_clip_value)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_tensor *a = tg_params_add(ps, "a", 1, (const int64_t[]){ 6 });
    float *g = a->grad;
    const float in[6] = { -7.0f, -0.5f, 0.0f, 0.25f, 5.0f, NAN };
    memcpy(g, in, sizeof in);
    tg_clip_grad_value(ps, 1.0);
    ck_assert(g[0] == -1.0f && g[1] == -0.5f && g[2] == 0.0f && g[3] == 0.25f);
    ck_assert(g[4] == 1.0f && isnan(g[5]));
    memcpy(g, in, sizeof in);
    tg_clip_grad_value(ps, -1.0);     /* invalid clip: no-op */
    tg_clip_grad_value(ps, NAN);
    tg_clip_grad_value(NULL, 1.0);
    ck_assert(g[0] == -7.0f && g[4] == 5.0f);
    tg_params_free(ps);

    ps = tg_params_new(TG_F64);
    a = tg_params_add(ps, "a", 1, (const int64_t[]){ 3 });
    double *d = a->grad;
    d[0] = -3.0;
    d[1] = 0.1;
    d[2] = INFINITY;
    tg_clip_grad_value(ps, 0.5);
    ck_assert(d[0] == -0.5 && d[1] == 0.1 && d[2] == 0.5);
    tg_params_free(ps);
}
END_TEST

/* ---- schedules ------------------------------------------------------------------ */

START_TEST(test_schedules_vs_torch)
{
    tg_schedule s = { .kind = TG_SCHED_STEP, .base_lr = 0.1, .gamma = 0.5, .step_size = 3 };
    for (int t = 0; t < 20; t++)
        ck_close(tg_schedule_lr(&s, t), optim_ref_steplr[t], 1e-12 * optim_ref_steplr[t]);
    s = (tg_schedule){ .kind = TG_SCHED_EXPONENTIAL, .base_lr = 0.1, .gamma = 0.9 };
    for (int t = 0; t < 20; t++)
        ck_close(tg_schedule_lr(&s, t), optim_ref_explr[t], 1e-12 * optim_ref_explr[t]);
    /* cosine without warmup is torch's CosineAnnealingLR over its first half-period */
    s = (tg_schedule){ .kind = TG_SCHED_COSINE, .base_lr = 0.1, .warmup_steps = 0,
                       .total_steps = 10, .min_lr = 0.001 };
    for (int t = 0; t <= 10; t++)
        ck_close(tg_schedule_lr(&s, t), optim_ref_coslr[t], 1e-12);
    ck_assert(tg_schedule_lr(&s, 11) == 0.001 && tg_schedule_lr(&s, 1000) == 0.001);
}
END_TEST

START_TEST(test_schedules_by_hand)
{
    tg_schedule s = { .kind = TG_SCHED_CONSTANT, .base_lr = 0.3 };
    ck_assert(tg_schedule_lr(&s, 0) == 0.3 && tg_schedule_lr(&s, 123456) == 0.3);

    s = (tg_schedule){ .kind = TG_SCHED_COSINE, .base_lr = 1.0, .warmup_steps = 4,
                       .total_steps = 14, .min_lr = 0.0 };
    ck_assert(tg_schedule_lr(&s, 0) == 0.0);
    ck_assert(tg_schedule_lr(&s, 1) == 0.25);
    ck_assert(tg_schedule_lr(&s, 3) == 0.75);
    ck_assert(tg_schedule_lr(&s, 4) == 1.0);
    ck_close(tg_schedule_lr(&s, 9), 0.5, 1e-15);      /* half way: cos(pi/2) = 0 */
    ck_close(tg_schedule_lr(&s, 14), 0.0, 0.0);
    ck_assert(tg_schedule_lr(&s, 13) > 0.0 && tg_schedule_lr(&s, 13) < 0.05);
    for (int t = 5; t < 14; t++)   /* monotone decay after warmup */
        ck_assert(tg_schedule_lr(&s, t) < tg_schedule_lr(&s, t - 1));

    s = (tg_schedule){ .kind = TG_SCHED_STEP, .base_lr = 1.0, .gamma = 0.1, .step_size = 10 };
    ck_assert(tg_schedule_lr(&s, 9) == 1.0);
    ck_close(tg_schedule_lr(&s, 10), 0.1, 1e-16);
    ck_close(tg_schedule_lr(&s, 25), 0.01, 1e-17);

    /* invalid schedules give NaN, which tg_optim_step refuses */
    ck_assert(isnan(tg_schedule_lr(NULL, 0)));
    ck_assert(isnan(tg_schedule_lr(&s, -1)));
    s.step_size = 0;
    ck_assert(isnan(tg_schedule_lr(&s, 3)));
    s = (tg_schedule){ .kind = TG_SCHED_COSINE, .base_lr = 1.0, .warmup_steps = -1,
                       .total_steps = 5 };
    ck_assert(isnan(tg_schedule_lr(&s, 0)));
    s.kind = (tg_schedule_kind)17;
    ck_assert(isnan(tg_schedule_lr(&s, 0)));

    tg_params *ps = scalar_param(1.0);
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    tg_optim *opt = tg_optim_new(ps, &c);
    tg_optim_set_lr(opt, tg_schedule_lr(&s, 0));
    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_ARG);
    tg_optim_free(opt);
    tg_params_free(ps);
}
END_TEST

/* Warm-up + cosine against torch's SequentialLR(LinearLR, CosineAnnealingLR): our closed
   form against torch's recursive update, over every step of each case. */
START_TEST(test_cosine_vs_torch)
{
    int n = (int)(sizeof schedule_ref_cosines / sizeof schedule_ref_cosines[0]);
    double worst = 0.0;
    for (int k = 0; k < n; k++) {
        const schedule_ref_cosine *r = &schedule_ref_cosines[k];
        tg_schedule s = { .kind = TG_SCHED_COSINE, .base_lr = r->base_lr,
                          .warmup_steps = r->warmup, .total_steps = r->total,
                          .warmup_start = r->start, .min_lr = r->eta_min };
        ck_assert_int_eq(tg_schedule_check(&s), TG_OK);
        for (int64_t t = 0; t <= r->total; t++) {
            double ours = tg_schedule_lr(&s, t), rel = fabs(ours - r->lr[t]) / r->base_lr;
            ck_assert_msg(rel <= 1e-14, "%s step %lld: %.17g, torch %.17g", r->name,
                          (long long)t, ours, r->lr[t]);
            worst = rel > worst ? rel : worst;
        }
        /* held at min_lr after the end (torch's cosine would rise again) */
        ck_assert(tg_schedule_lr(&s, r->total + 7) == r->eta_min);
    }
    if (getenv("TG_VERBOSE"))
        printf("schedule-ref cosine: max |ours - torch| / base_lr %.3g\n", worst);
}
END_TEST

/* Reduce-on-plateau against torch's ReduceLROnPlateau, through an optimizer. */
START_TEST(test_plateau_vs_torch)
{
    int n = (int)(sizeof schedule_ref_plateaus / sizeof schedule_ref_plateaus[0]);
    for (int k = 0; k < n; k++) {
        const schedule_ref_plateau *r = &schedule_ref_plateaus[k];
        tg_schedule s = tg_schedule_defaults(TG_SCHED_PLATEAU, r->base_lr);
        s.factor = r->factor;
        s.patience = r->patience;
        s.threshold = r->threshold;
        s.threshold_abs = r->threshold_abs;
        s.cooldown = r->cooldown;
        s.min_lr = r->min_lr;
        s.eps = r->eps;
        tg_params *ps = scalar_param(1.0);
        tg_optim_config c = tg_optim_defaults(TG_SGD);
        tg_optim *opt = tg_optim_new(ps, &c);
        ck_assert_int_eq(tg_optim_set_schedule(opt, &s), TG_OK);
        ck_assert(tg_optim_get_lr(opt) == r->base_lr);
        for (int i = 0; i < SCHEDULE_REF_NMETRICS; i++) {
            ck_assert_int_eq(tg_optim_observe(opt, schedule_ref_metrics[i]), TG_OK);
            ck_assert_msg(tg_optim_get_lr(opt) == r->lr[i], "%s call %d: lr %.17g, torch "
                          "%.17g", r->name, i, tg_optim_get_lr(opt), r->lr[i]);
        }
        tg_optim_free(opt);
        tg_params_free(ps);
    }
}
END_TEST

/* An attached schedule sets the lr of every step; plateau starts at base_lr. */
START_TEST(test_schedule_attached)
{
    tg_params *ps = scalar_param(1.0);
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    tg_optim *opt = tg_optim_new(ps, &c);
    ck_assert_ptr_null(tg_optim_get_schedule(opt));
    tg_schedule s = tg_schedule_defaults(TG_SCHED_STEP, 0.5);
    s.step_size = 2;
    ck_assert_int_eq(tg_optim_set_schedule(opt, &s), TG_OK);
    ck_assert_ptr_nonnull(tg_optim_get_schedule(opt));
    ck_assert(tg_optim_get_schedule(opt)->base_lr == 0.5);
    s.base_lr = 99.0;   /* the optimizer holds its own copy */
    tg_tensor *p = tg_params_at(ps, 0);
    for (int t = 0; t < 5; t++) {
        tg_optim_set_lr(opt, 1234.0);   /* overridden by the schedule */
        ((double *)p->grad)[0] = 1.0;
        double before = tg_tensor_get(p, 0);
        ck_assert_int_eq(tg_optim_step(opt), TG_OK);
        double want = 0.5 * pow(0.1, t / 2);
        ck_assert(tg_optim_get_lr(opt) == want);
        ck_close(before - tg_tensor_get(p, 0), want, 1e-15);
    }
    ck_assert_int_eq(tg_optim_observe(opt, 1.0), TG_OK);   /* not a plateau: no effect */
    ck_assert(tg_optim_get_lr(opt) == 0.5 * pow(0.1, 2));
    ck_assert_int_eq(tg_optim_set_schedule(opt, NULL), TG_OK);   /* detached */
    ck_assert_ptr_null(tg_optim_get_schedule(opt));
    tg_optim_set_lr(opt, 0.25);
    ((double *)p->grad)[0] = 1.0;
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    ck_assert(tg_optim_get_lr(opt) == 0.25);
    tg_optim_free(opt);
    tg_params_free(ps);
}
END_TEST

/* Every refused schedule says which field and why. */
START_TEST(test_schedule_errors)
{
    struct { tg_schedule s; const char *want; } bad[] = {
        { { .kind = TG_SCHED_CONSTANT, .base_lr = -1.0 }, "constant: invalid base_lr -1" },
        { { .kind = TG_SCHED_STEP, .base_lr = 1.0, .gamma = 0.5, .step_size = 0 },
          "step: invalid step_size 0 (must be >= 1)" },
        { { .kind = TG_SCHED_EXPONENTIAL, .base_lr = 1.0, .gamma = NAN },
          "exponential: invalid gamma nan" },
        { { .kind = TG_SCHED_COSINE, .base_lr = 1.0, .warmup_steps = -1, .total_steps = 5 },
          "cosine: invalid warmup_steps -1 (must be >= 0)" },
        { { .kind = TG_SCHED_COSINE, .base_lr = 1.0, .warmup_steps = 5, .total_steps = 5 },
          "cosine: total_steps 5 must exceed warmup_steps 5" },
        { { .kind = TG_SCHED_COSINE, .base_lr = 1.0, .total_steps = 5, .warmup_start = 1.5 },
          "cosine: invalid warmup_start 1.5 (must be finite and in [0, 1])" },
        { { .kind = TG_SCHED_PLATEAU, .base_lr = 1.0, .factor = 1.0 },
          "plateau: invalid factor 1 (must be finite and in [0, 1))" },
        { { .kind = TG_SCHED_PLATEAU, .base_lr = 1.0, .factor = 0.5, .patience = -2 },
          "plateau: invalid patience -2 (must be >= 0)" },
        { { .kind = TG_SCHED_PLATEAU, .base_lr = 1.0, .factor = 0.5, .cooldown = -1 },
          "plateau: invalid cooldown -1 (must be >= 0)" },
        { { .kind = TG_SCHED_PLATEAU, .base_lr = 1.0, .factor = 0.5, .eps = -1e-8 },
          "plateau: invalid eps -1e-08" },
        { { .kind = (tg_schedule_kind)17, .base_lr = 1.0 }, "schedule: unknown kind 17" },
    };
    tg_params *ps = scalar_param(1.0);
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    tg_optim *opt = tg_optim_new(ps, &c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tg_schedule_check(&bad[i].s), TG_ERR_ARG);
        ck_assert_msg(strstr(tg_last_error(), bad[i].want) != NULL, "case %zu: '%s'", i,
                      tg_last_error());
        ck_assert(isnan(tg_schedule_lr(&bad[i].s, 0)));
        ck_assert_int_eq(tg_optim_set_schedule(opt, &bad[i].s), TG_ERR_ARG);
        ck_assert_msg(strncmp(tg_last_error(), "optim_set_schedule: schedule: ", 30) == 0
                      && strstr(tg_last_error(), bad[i].want) != NULL, "case %zu: '%s'", i,
                      tg_last_error());
        ck_assert_ptr_null(tg_optim_get_schedule(opt));   /* nothing attached */
    }
    tg_schedule s = tg_schedule_defaults(TG_SCHED_CONSTANT, 0.1);
    ck_assert(isnan(tg_schedule_lr(&s, -3)));
    ck_assert_str_eq(tg_last_error(), "schedule: negative step -3");
    ck_assert_int_eq(tg_schedule_check(NULL), TG_ERR_NULL);
    ck_assert_str_eq(tg_last_error(), "schedule: NULL schedule");
    ck_assert_int_eq(tg_optim_set_schedule(NULL, &s), TG_ERR_NULL);
    ck_assert_str_eq(tg_last_error(), "optim_set_schedule: optimizer is NULL");
    ck_assert_int_eq(tg_optim_observe(NULL, 1.0), TG_ERR_NULL);
    ck_assert_str_eq(tg_last_error(), "optim_observe: optimizer is NULL");
    ck_assert_ptr_null(tg_optim_get_schedule(NULL));
    for (int k = 0; k < TG_SCHED_KIND_COUNT; k++) {   /* the defaults are valid */
        tg_schedule d = tg_schedule_defaults((tg_schedule_kind)k, 0.1);
        ck_assert_int_eq(tg_schedule_check(&d), TG_OK);
        ck_assert(tg_schedule_lr(&d, 0) == 0.1);
    }
    tg_optim_free(opt);
    tg_params_free(ps);
}
END_TEST

Suite *optim_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("torch", 0),
        TG_LOOP(test_torch_reference_f64, NCASES),
        TG_LOOP(test_torch_reference_f32, NCASES),
        TG_CASE("optimizers", 60),
        TG_TEST(test_sgd_by_hand),
        TG_TEST(test_adam_adamw_by_hand),
        TG_TEST(test_rmsprop_adagrad_by_hand),
        TG_TEST(test_names_and_defaults),
        TG_TEST(test_invalid_configs),
        TG_TEST(test_nonfinite_step),
        TG_TEST(test_step_errors_and_lr),
        TG_TEST(test_thread_count_invariance),
        TG_CASE("clip", 0),
        TG_TEST(test_clip_norm_values),
        TG_TEST(test_clip_norm_nonfinite),
        TG_TEST(test_clip_value),
        TG_CASE("schedule", 0),
        TG_TEST(test_schedules_vs_torch),
        TG_TEST(test_schedules_by_hand),
        TG_TEST(test_cosine_vs_torch),
        TG_TEST(test_plateau_vs_torch),
        TG_TEST(test_schedule_attached),
        TG_TEST(test_schedule_errors),
    };
    return TG_TEST_SUITE("optim", rows);
}
