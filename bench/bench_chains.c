/* bench/bench_chains.c: two layers' chains in turn or side by side: a wavefront's ceiling. */
/*
 * The recurrent part of the char-LM step is two chains of 50 time steps, one per layer,
 * each a forward and a backward through the LSTM cell (batch 50). Today they run one
 * after the other, every product and large loop split over the threads. A wavefront over
 * layers (layer 1 at step t beside layer 2 at step t-1) would instead give each thread a
 * chain of its own, every op on one thread. This times the two chains (layer 1: one-hot
 * input of 65, layer 2: input 128; the sum of every h as the loss) three ways:
 *   one_thread_ms     in turn, one thread
 *   in_turn_ms        in turn, TG_BENCH_THREADS threads (what the library does today)
 *   side_by_side_ms   each chain on a thread of its own, at once, with no dependence
 *                     between them (a wavefront also waits once per time step)
 *   chains hidden= batch=50 seq=50 threads= one_thread_ms= in_turn_ms= side_by_side_ms=
 *          side_by_side_speedup=   (in_turn_ms / side_by_side_ms)
 * Best of 5 rounds (2 with TG_BENCH_QUICK=1) after 3 warm-up runs. TG_BENCH_HIDDEN
 * ("128" by default here). Each chain has its own tape and parameters.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_util.h"
#include "tapegrad.h"

enum { B = 50, T = 50, V = 65 };

/* One layer's chain: its cell, parameters, tape, inputs (T of (B,I)) and zero state. */
typedef struct chain {
    const tg_cell_type *type;
    void *cell;
    tg_params *ps;
    tg_tape *tape;
    tg_tensor *x[T], *state[2];
} chain;

static void chain_init(chain *c, int input, int hidden, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_init init = {.kind = TG_INIT_UNIFORM, .scale = 0.08};
    c->type = tg_cell_type_find("lstm");
    c->cell = calloc(1, c->type->size);
    c->ps = tg_params_new(TG_F32);
    c->tape = tg_tape_new();
    if (!c->cell || !c->ps || !c->tape ||
        c->type->init(c->cell, c->ps, "chain", input, hidden, &init, &rng) != TG_OK)
        bench_die("chain", "cannot build the cell");
    for (int t = 0; t < T; t++) {
        if (!(c->x[t] = tg_tensor_new(TG_F32, 2, (const int64_t[]){B, input})))
            bench_die("chain", "out of memory");
        if (input != V)
            tg_tensor_fill_uniform(c->x[t], &rng, -1, 1);
        else    /* one-hot rows, as the first layer's input */
            for (int b = 0; b < B; b++)
                tg_tensor_set(c->x[t], (int64_t)b * V + (int64_t)tg_rng_below(&rng, V), 1.0);
    }
    for (int s = 0; s < 2; s++)
        if (!(c->state[s] = tg_tensor_new(TG_F32, 2, (const int64_t[]){B, hidden})))
            bench_die("chain", "out of memory");
}

/* Forward through the T steps, loss = the sum of every h, backward. */
static void chain_run(chain *c)
{
    tg_tape_reset(c->tape);
    tg_tensor *state[2] = { c->state[0], c->state[1] }, *next[2], *loss = NULL;
    for (int t = 0; t < T; t++) {
        c->type->step(c->tape, c->cell, c->x[t], state, next);
        state[0] = next[0];
        state[1] = next[1];
        tg_tensor *s = tg_sum(c->tape, next[0]);
        loss = loss ? tg_add(c->tape, loss, s) : s;
    }
    tg_params_zero_grad(c->ps);
    if (tg_backward(c->tape, loss) != TG_OK)
        bench_die("chain", tg_tape_errmsg(c->tape));
}

static void chain_free(chain *c)
{
    for (int t = 0; t < T; t++)
        tg_tensor_free(c->x[t]);
    tg_tensor_free(c->state[0]);
    tg_tensor_free(c->state[1]);
    tg_tape_free(c->tape);
    tg_params_free(c->ps);
    free(c->cell);
}

/* Seconds for both chains: in turn on `threads` threads, or side by side (threads 0). */
static double time_chains(chain *c, int threads)
{
    double t0 = bench_now();
    if (threads > 0) {
        tg_set_num_threads(threads);
        chain_run(&c[0]);
        chain_run(&c[1]);
    } else {
#pragma omp parallel num_threads(2)
        chain_run(&c[omp_get_thread_num()]);
    }
    return bench_now() - t0;
}

int main(void)
{
    const int threads = bench_threads(), rounds = bench_quick() ? 2 : 5;
    const char *list = getenv("TG_BENCH_HIDDEN") ? NULL : "128";
    for (int H; (H = bench_next_hidden(&list)) > 0;) {
        chain c[2];
        chain_init(&c[0], V, H, 1);
        chain_init(&c[1], H, H, 2);
        for (int w = 0; w < 3; w++)
            time_chains(c, threads);
        double best[3] = { 1e9, 1e9, 1e9 };
        const int way[3] = { 1, threads, 0 };
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k < 3; k++) {
                double s = time_chains(c, way[k]);
                best[k] = s < best[k] ? s : best[k];
            }
        printf("chains hidden=%d batch=%d seq=%d threads=%d one_thread_ms=%.2f in_turn_ms=%.2f "
               "side_by_side_ms=%.2f side_by_side_speedup=%.2f\n", H, B, T, threads,
               1e3 * best[0], 1e3 * best[1], 1e3 * best[2], best[1] / best[2]);
        tg_set_num_threads(threads);
        chain_free(&c[0]);
        chain_free(&c[1]);
    }
    return 0;
}
