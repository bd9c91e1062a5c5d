/* bench/bench_sample.c: generation speed, `charlm sample`'s loop at batch 1, in characters/s. */
/*
 * Prints, per hidden size (default 128 and 512; 2-layer LSTM, one-hot input, vocab 65):
 *   sample cell=lstm layers=2 hidden= batch=1 threads= chars= chars_per_s= us_per_char=
 * The loop is cmd_sample's (examples/charlm/sample.c): per character the tape is reset
 * with gradients off, tg_charlm_step runs one token through the stack and the head, the V
 * logits are read back and the next token is drawn from their softmax (temperature 1) with
 * tg_rng. The weights are random (uniform +-0.08): speed does not depend on their values.
 * chars_per_s is the best of 3 rounds of at least TG_BENCH_SAMPLE_SECONDS (default 0.5)
 * each. Environment: TG_BENCH_THREADS (default 1: generation is one product of one row
 * per weight, too small to split), TG_BENCH_HIDDEN ("128,512"), TG_BENCH_QUICK=1
 * (0.2 s rounds).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "tapegrad.h"

/* Draws a token from softmax(logits) (V entries); p is scratch of V entries. */
static int32_t draw(const double *logits, int V, double *p, tg_rng *rng)
{
    double mx = logits[0], sum = 0;
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < V; i++)
        sum += p[i] = exp(logits[i] - mx);
    double u = tg_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        acc += p[i];
        if (u < acc)
            return i;
    }
    return V - 1;
}

static void bench_size(int hidden, int threads, double seconds)
{
    const int V = BENCH_VOCAB;
    tg_rng rng;
    tg_charlm m;
    tg_params *ps = bench_charlm_new(&m, tg_cell_type_find("lstm"), 2, hidden, &rng);
    tg_tape *tape = tg_tape_new();
    tg_stack_state *state = tg_stack_state_new(&m.rnn, TG_F32, 1);
    double logits[BENCH_VOCAB], p[BENCH_VOCAB];
    if (!tape || !state)
        bench_die("setup", "out of memory");
    int32_t tok = 0;
    double best = 0;
    long total = 0;
    for (int round = 0; round < 4; round++) {   /* round 0 warms up */
        long n = 0;
        double t0 = bench_now(), t;
        do {
            for (int k = 0; k < 16; k++, n++) {
                tg_tape_reset(tape);
                tg_tape_set_grad_enabled(tape, false);
                tg_tensor *lg = tg_charlm_step(tape, &m, &tok, 1, state);
                if (!lg)
                    bench_die("step", tg_tape_errmsg(tape));
                for (int i = 0; i < V; i++)
                    logits[i] = tg_tensor_get(lg, i);
                tok = draw(logits, V, p, &rng);
            }
            t = bench_now() - t0;
        } while (t < (round == 0 ? seconds / 4 : seconds));
        if (round > 0 && n / t > best)
            best = n / t;
        total += round > 0 ? n : 0;
    }
    printf("sample cell=lstm layers=2 hidden=%d batch=1 threads=%d chars=%ld "
           "chars_per_s=%.0f us_per_char=%.1f\n", hidden, threads, total, best, 1e6 / best);
    fflush(stdout);
    tg_stack_state_free(state);
    tg_tape_free(tape);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}

int main(void)
{
    const char *e = getenv("TG_BENCH_THREADS");
    int threads = e && atoi(e) > 0 ? atoi(e) : 1;   /* generation: one thread by default */
    double seconds = bench_quick() ? 0.2 : 0.5;
    const char *s = getenv("TG_BENCH_SAMPLE_SECONDS");
    if (s && atof(s) > 0)
        seconds = atof(s);
    tg_set_num_threads(threads);
    const char *p = NULL;
    for (int h; (h = bench_next_hidden(&p)) > 0;)
        bench_size(h, threads, seconds);
    return 0;
}
