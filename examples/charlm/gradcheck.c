/* examples/charlm/gradcheck.c: 'charlm gradcheck': the configured model in float64 on a
   tiny batch, every parameter's gradient against central differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "examples/charlm/charlm.h"

typedef struct gc_ctx {
    const tg_charlm *m;
    const int32_t *inputs, *targets;   /* (B,T) */
    int64_t B, T;
    tg_stack_state *state;
    uint64_t seed;
} gc_ctx;

/* The loss under test: the same function every call (zero state; dropout and the
   regularisers, when set, in training mode with the same masks every call). */
static tg_tensor *gc_loss(tg_tape *tape, void *user)
{
    gc_ctx *g = user;
    tg_rng rng;
    tg_rng_seed(&rng, g->seed);
    tg_stack_state_zero(g->state);
    const tg_rnn_stack *s = &g->m->rnn;
    bool training = s->dropout > 0 || s->var_dropout > 0 || s->zoneout > 0 ||
                    s->weight_drop > 0;
    return tg_charlm_loss(tape, g->m, g->inputs, g->targets, g->B, g->T, g->state,
                          training, &rng);
}

int cmd_gradcheck(const charlm_opts *o)
{
    char err[600];
    const charlm_config *cfg = &o->cfg;
    corpus c;
    int rc = corpus_load(o->data, NULL, 0, &c, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    int64_t B = cfg->batch, T = cfg->seq;
    if (c.n < B * T + 1) {
        errorf("%s has %lld characters; a %lld x %lld batch needs %lld", o->data,
               (long long)c.n, (long long)B, (long long)T, (long long)(B * T + 1));
        corpus_free(&c);
        return EXIT_RUNTIME;
    }
    tg_params *ps = NULL;
    tg_charlm m = {0};
    rc = model_build(cfg, c.V, TG_F64, &ps, &m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        corpus_free(&c);
        return rc;
    }
    int np = tg_params_count(ps);
    int32_t *inputs = malloc((size_t)(B * T) * sizeof *inputs);
    int32_t *targets = malloc((size_t)(B * T) * sizeof *targets);
    double *per = calloc((size_t)np + 1, sizeof *per);
    tg_stack_state *state = tg_stack_state_new(&m.rnn, TG_F64, B);
    if (!inputs || !targets || !per || !state) {
        errorf("out of memory");
        rc = EXIT_RUNTIME;
        goto out;
    }
    /* row b reads the text from b*T on: contiguous streams as in training */
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            inputs[b * T + t] = c.ids[b * T + t];
            targets[b * T + t] = c.ids[b * T + t + 1];
        }
    char reg[128];
    printf("gradcheck: %s %d x %d%s, vocabulary %d, %s input, batch %lld x %lld, float64, "
           "%lld weights\n",
           cfg->cell->name, cfg->layers, cfg->hidden, model_regularisers(cfg, reg, sizeof reg),
           c.V, cfg->embed ? "embedded" : "one-hot", (long long)B, (long long)T,
           (long long)tg_params_numel(ps));
    fflush(stdout);
    gc_ctx g = {&m, inputs, targets, B, T, state, cfg->seed};
    tg_gradcheck_opts gopts = {.eps = o->eps, .floor = 0, .tolerance = o->tolerance,
                               .max_per_tensor = o->max_per_tensor};
    tg_gradcheck_result res;
    tg_status st = tg_gradcheck_params(ps, gc_loss, &g, &gopts, &res, per);
    if (st != TG_OK) {
        errorf("gradient check could not run: %s", tg_status_str(st));
        rc = EXIT_RUNTIME;
        goto out;
    }
    for (int i = 0; i < np; i++) {
        char shape[64];
        tg_shape_str(tg_params_at(ps, i), shape, sizeof shape);
        printf("  %-24s %-12s max_rel_err %.3e  %s\n", tg_params_name(ps, i), shape, per[i],
               per[i] <= o->tolerance ? "ok" : "FAIL");
    }
    printf("%lld elements checked; worst: %s[%lld] analytic %.9g numeric %.9g\n",
           (long long)res.checked, tg_params_name(ps, res.worst_tensor),
           (long long)res.worst_index, res.analytic, res.numeric);
    printf("gradcheck: params=%d max_rel_err=%.3e\n", np, res.max_rel_err);
    fflush(stdout);
    rc = res.passed ? EXIT_OK : EXIT_RUNTIME;
    if (!res.passed)
        errorf("FAILED: max_rel_err %.3e > tolerance %.1e", res.max_rel_err, o->tolerance);
out:
    tg_stack_state_free(state);
    free(per);
    free(inputs);
    free(targets);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
    corpus_free(&c);
    return rc;
}
