/* bench/bench_cells.c: a custom cell's training step against the LSTM's, any cell type. */
/*
 * The char-LM training step (one-hot input over 65 symbols, 2 layers, batch 50, seq 50,
 * linear head, cross-entropy, backward, clip 5, RMSprop) with the layers built from a
 * registered cell type (tg_cell_type_find): the cell's own step function, as a user's or a
 * plug-in's cell would run, with nothing special for the library's cells. The types of
 * TG_BENCH_CELLS (default "lstm,lnlstm") are timed in the same process, alternately, 3
 * steps of each per round, 5 rounds (after 2 warm-up steps each):
 *   cells cell= hidden= batch=50 seq=50 threads= ms_per_step= tokens_per_s=
 *         vs_first=  (this type's ms over the first type's, the same run)
 * Environment: TG_BENCH_THREADS (default 2), TG_BENCH_HIDDEN ("128"),
 * TG_BENCH_CELLS, TG_BENCH_QUICK=1 (2 rounds), TG_BENCH_PLUGIN=path.so (dlopen it before
 * the types are looked up, so TG_BENCH_CELLS can name the types its constructor registers;
 * the program must be linked with libtapegrad.so, as make's build/bench/cells_so is, or
 * the plug-in registers into a second copy of the library and the run stops).
 */
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "tapegrad.h"

enum { V = 65, LAYERS = 2, B = 50, T = 50, MAX_TYPES = 4, PER_ROUND = 3 };

/* One model: LAYERS cells of a type, the head, its optimizer and a zero initial state. */
typedef struct model {
    const tg_cell_type *type;
    void *cell[LAYERS];
    tg_linear head;
    tg_params *ps;
    tg_optim *opt;
    tg_tensor *state[LAYERS][TG_MAX_CELL_STATE];
} model;

static void model_init(model *m, const tg_cell_type *type, int H, tg_rng *rng)
{
    m->type = type;
    m->ps = tg_params_new(TG_F32);
    tg_init init = {.kind = TG_INIT_UNIFORM, .scale = 0.08};
    if (!m->ps)
        bench_die("params", "out of memory");
    for (int l = 0; l < LAYERS; l++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rnn.%d", l);
        m->cell[l] = calloc(1, type->size);
        if (!m->cell[l] || type->init(m->cell[l], m->ps, prefix, l ? H : V, H, &init, rng))
            bench_die(type->name, "init failed");
        for (int s = 0; s < type->nstate; s++)
            if (!(m->state[l][s] = tg_tensor_new(TG_F32, 2, (const int64_t[]){B, H})))
                bench_die("state", "out of memory");
    }
    if (tg_linear_init(&m->head, m->ps, "head", H, V, H, &init, rng) != TG_OK)
        bench_die("head", "init failed");
    tg_optim_config oc = tg_optim_defaults(TG_RMSPROP);
    oc.lr = 2e-3;
    if (!(m->opt = tg_optim_new(m->ps, &oc)))
        bench_die("optimizer", "out of memory");
}

static void model_free(model *m)
{
    for (int l = 0; l < LAYERS; l++) {
        free(m->cell[l]);
        for (int s = 0; s < m->type->nstate; s++)
            tg_tensor_free(m->state[l][s]);
    }
    tg_optim_free(m->opt);
    tg_params_free(m->ps);
}

/* One training step on tokens in (T,B) with targets tg (T,B), time-major; returns ms. */
static double train_step(model *m, tg_tape *tape, const int32_t *in, const int32_t *tg)
{
    double t0 = bench_now();
    tg_tape_reset(tape);
    tg_tensor *logits[T], *next[TG_MAX_CELL_STATE];
    tg_tensor *st[LAYERS][TG_MAX_CELL_STATE];
    memcpy(st, m->state, sizeof st);
    for (int t = 0; t < T; t++) {
        tg_tensor *x = tg_one_hot(tape, TG_F32, in + t * B, B, V);
        for (int l = 0; l < LAYERS; l++) {
            m->type->step(tape, m->cell[l], x, st[l], next);
            memcpy(st[l], next, sizeof next);
            x = next[0];
        }
        logits[t] = tg_linear_apply(tape, &m->head, x);
    }
    tg_tensor *loss = tg_cross_entropy(tape, tg_concat_n(tape, logits, T, 0), tg);
    tg_params_zero_grad(m->ps);
    if (!loss || tg_backward(tape, loss) != TG_OK)
        bench_die(m->type->name, tg_tape_errmsg(tape));
    tg_clip_grad_norm(m->ps, 5.0);
    if (tg_optim_step(m->opt) != TG_OK)
        bench_die(m->type->name, "optimizer failed");
    return (bench_now() - t0) * 1e3;
}

static void bench_hidden(const tg_cell_type **types, int ntypes, int H, int threads,
                         int rounds)
{
    model m[MAX_TYPES];
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tape *tape = tg_tape_new();
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    double *ms = malloc(sizeof(double) * (size_t)(ntypes * rounds * PER_ROUND));
    if (!tape || !in || !tg || !ms)
        bench_die("setup", "out of memory");
    for (int k = 0; k < ntypes; k++)
        model_init(&m[k], types[k], H, &rng);
    for (int r = -1; r < rounds; r++) {   /* round -1 warms up */
        for (int k = 0; k < ntypes; k++) {
            for (int s = 0; s < (r < 0 ? 2 : PER_ROUND); s++) {
                for (int i = 0; i < B * T; i++) {
                    in[i] = (int32_t)tg_rng_below(&rng, V);
                    tg[i] = (int32_t)tg_rng_below(&rng, V);
                }
                double t = train_step(&m[k], tape, in, tg);
                if (r >= 0)
                    ms[(k * rounds + r) * PER_ROUND + s] = t;
            }
        }
    }
    double first = 0;
    for (int k = 0; k < ntypes; k++) {
        double *v = ms + k * rounds * PER_ROUND;
        double med = bench_median(v, rounds * PER_ROUND);
        if (k == 0)
            first = med;
        printf("cells cell=%s hidden=%d batch=%d seq=%d threads=%d ms_per_step=%.2f "
               "tokens_per_s=%.0f vs_first=%.2f\n", types[k]->name, H, B, T, threads, med,
               B * T / (med * 1e-3), med / first);
        model_free(&m[k]);
    }
    fflush(stdout);
    free(in), free(tg), free(ms);
    tg_tape_free(tape);
}

int main(void)
{
    int threads = bench_threads();
    int rounds = bench_quick() ? 2 : 5;
    const char *plugin = getenv("TG_BENCH_PLUGIN");
    if (plugin && *plugin) {
        int before = tg_cell_type_count();
        tg_clear_error();
        if (!dlopen(plugin, RTLD_NOW))
            bench_die("TG_BENCH_PLUGIN", dlerror());
        /* a refused registration (a taken name) left its reason; a plug-in bound to a
           second copy of the library registers where this program cannot look */
        if (tg_cell_type_count() == before)
            bench_die(plugin, tg_last_status() != TG_OK ? tg_last_error()
                      : "registered no cell type in this program's copy of tapegrad "
                        "(no constructor, or the program links libtapegrad.a)");
    }
    const char *cs = getenv("TG_BENCH_CELLS");
    char names[256];
    snprintf(names, sizeof names, "%s", cs && *cs ? cs : "lstm,lnlstm");
    const tg_cell_type *types[MAX_TYPES];
    int ntypes = 0;
    for (char *tok = strtok(names, ","); tok && ntypes < MAX_TYPES; tok = strtok(NULL, ","))
        if (!(types[ntypes++] = tg_cell_type_find(tok)))
            bench_die(tok, "no such cell type");
    tg_set_num_threads(threads);
    const char *hs = getenv("TG_BENCH_HIDDEN");
    if (!hs || !*hs)
        hs = "128";
    for (const char *p = hs; *p;) {
        char *end;
        long h = strtol(p, &end, 10);
        if (end == p || h < 1)
            bench_die("TG_BENCH_HIDDEN", "expected a comma-separated list of sizes");
        bench_hidden(types, ntypes, (int)h, threads, rounds);
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}
