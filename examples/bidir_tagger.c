/* examples/bidir_tagger.c: a sequence labelling task that needs the future, solved by a
   bidirectional network (tg_bidir_rnn) and failed by the same cell run forward only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/*
 * Legend: B batch, T time, K symbols, H hidden.
 *
 * The task: read T random symbols out of K and label every position with the symbol two
 * places LATER (cyclically: the last two positions get the first two symbols). A network
 * that reads forward only has not seen the answer when it must give it, except at the
 * last two positions, so it can reach at most (2 + (T-2)/K) / T; a bidirectional one sees
 * the whole sequence at every position and can be right everywhere.
 *
 *     bidir_tagger [--cell NAME] [--steps N] [--seed S]
 *
 * prints both held-out accuracies; exits 1 unless the bidirectional model beats the
 * forward-only bound clearly and the forward-only model stays near it.
 */

enum { K = 4, T = 12, B = 32, H = 16, LOOKAHEAD = 2, EVAL_B = 500 };

typedef struct model {
    tg_params *ps;
    bool bidirectional;
    const tg_cell_type *type;
    tg_bidir_rnn net;          /* the bidirectional model's layer    */
    void *cell;                /* the forward-only model's cell      */
    tg_linear head;            /* 2H (or H) -> K                     */
} model;

static tg_status model_init(model *m, const tg_cell_type *type, bool bidirectional,
                            uint64_t seed)
{
    memset(m, 0, sizeof *m);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    m->ps = tg_params_new(TG_F32);
    m->type = type;
    m->bidirectional = bidirectional;
    if (!m->ps)
        return TG_ERR_NOMEM;
    tg_status st;
    if (bidirectional) {
        st = tg_bidir_rnn_init(&m->net, m->ps, "rnn", type, 1, K, H, NULL, &rng);
    } else {
        m->cell = calloc(1, type->size);
        st = m->cell ? type->init(m->cell, m->ps, "rnn", K, H, NULL, &rng) : TG_ERR_NOMEM;
    }
    if (st == TG_OK)
        st = tg_linear_init(&m->head, m->ps, "head", bidirectional ? 2 * H : H, K,
                            bidirectional ? 2 * H : H, NULL, &rng);
    return st;
}

static void model_free(model *m)
{
    tg_bidir_rnn_deinit(&m->net);
    free(m->cell);
    tg_params_free(m->ps);
}

/* The (T*n, K) logits of n sequences, time-major (row t*n + b). */
static tg_tensor *model_forward(tg_tape *tape, const model *m, const int32_t *seqs, int64_t n)
{
    tg_tensor *x[T], *h[T], *logits[T];
    for (int t = 0; t < T; t++) {
        x[t] = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ n, K });    /* one-hot */
        if (!x[t])
            return NULL;
        for (int64_t b = 0; b < n; b++)
            tg_tensor_set(x[t], b * K + seqs[b * T + t], 1.0);
    }
    if (m->bidirectional) {
        if (tg_bidir_rnn_forward(tape, &m->net, x, T, h) != TG_OK)
            return NULL;
    } else {
        tg_tensor *state[TG_MAX_CELL_STATE], *next[TG_MAX_CELL_STATE];
        for (int k = 0; k < m->type->nstate; k++)
            state[k] = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ n, H });
        for (int t = 0; t < T; t++) {
            m->type->step(tape, m->cell, x[t], state, next);
            h[t] = next[0];
            memcpy(state, next, (size_t)m->type->nstate * sizeof *state);
        }
    }
    for (int t = 0; t < T; t++)
        logits[t] = tg_linear_apply(tape, &m->head, h[t]);                       /* (n,K) */
    return tg_concat_n(tape, logits, T, 0);                                    /* (T*n,K) */
}

/* n random sequences and their labels, time-major like the logits. */
static void make_batch(tg_rng *rng, int32_t *seqs, int32_t *labels, int64_t n)
{
    for (int64_t b = 0; b < n; b++)
        for (int t = 0; t < T; t++)
            seqs[b * T + t] = (int32_t)tg_rng_below(rng, K);
    for (int t = 0; t < T; t++)
        for (int64_t b = 0; b < n; b++)
            labels[t * n + b] = seqs[b * T + (t + LOOKAHEAD) % T];
}

static double accuracy(tg_tape *tape, const model *m, const int32_t *seqs,
                       const int32_t *labels, int64_t n)
{
    tg_tape_reset(tape);
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *logits = model_forward(tape, m, seqs, n);
    int64_t right = 0;
    for (int64_t i = 0; logits && i < T * n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (tg_tensor_get(logits, i * K + k) > tg_tensor_get(logits, i * K + best))
                best = k;
        right += best == labels[i];
    }
    tg_tape_set_grad_enabled(tape, true);
    return (double)right / (double)(T * n);
}

/* Trains one model for steps steps; returns its held-out accuracy, or -1 on failure. */
static double train(const tg_cell_type *type, bool bidirectional, int steps, uint64_t seed)
{
    static int32_t seqs[EVAL_B * T], labels[EVAL_B * T];
    model m;
    double acc = -1;
    tg_tape *tape = tg_tape_new();
    tg_optim *opt = NULL;
    if (tape && model_init(&m, type, bidirectional, seed) == TG_OK) {
        tg_optim_config cfg = tg_optim_defaults(TG_ADAM);
        cfg.lr = 0.02;
        opt = tg_optim_new(m.ps, &cfg);
    }
    tg_rng rng;
    tg_rng_seed(&rng, seed + 1);
    for (int step = 1; opt && step <= steps; step++) {
        make_batch(&rng, seqs, labels, B);
        tg_tape_reset(tape);
        tg_params_zero_grad(m.ps);
        tg_tensor *loss = tg_cross_entropy(tape, model_forward(tape, &m, seqs, B), labels);
        if (tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "step %d: %s\n", step, tg_tape_errmsg(tape));
            break;
        }
        tg_clip_grad_norm(m.ps, 5.0);
        tg_optim_step(opt);
        if (step == steps) {
            double last = tg_tensor_get(loss, 0);       /* read before the tape is reset */
            make_batch(&rng, seqs, labels, EVAL_B);   /* fresh sequences, never trained on */
            acc = accuracy(tape, &m, seqs, labels, EVAL_B);
            printf("%-18s %s, H=%d, %d steps: final loss %.3f, held-out accuracy %.3f\n",
                   bidirectional ? "bidirectional" : "forward only", type->name, H, steps,
                   last, acc);
        }
    }
    if (!opt)
        fprintf(stderr, "bidir_tagger: could not build the model: %s\n", tg_last_error());
    tg_optim_free(opt);
    tg_tape_free(tape);
    model_free(&m);
    return acc;
}

int main(int argc, char **argv)
{
    const char *cell = "torchgru";
    int steps = 300;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cell") == 0 && i + 1 < argc)
            cell = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bidir_tagger [--cell NAME] [--steps N] [--seed S]\n");
            return 2;
        }
    }
    const tg_cell_type *type = tg_cell_type_find(cell);
    if (!type || steps < 1) {
        fprintf(stderr, "bidir_tagger: %s\n", type ? "--steps must be >= 1"
                : "no such cell type (see charlm --help for the registered ones)");
        return 2;
    }
    double bound = (LOOKAHEAD + (double)(T - LOOKAHEAD) / K) / T;
    printf("task: label each of %d symbols (K=%d) with the one %d places later; chance %.3f,"
           " forward-only at most %.3f\n", T, K, LOOKAHEAD, 1.0 / K, bound);
    double bi = train(type, true, steps, seed);
    double fwd = train(type, false, steps, seed);
    if (bi < 0 || fwd < 0)
        return 1;
    return bi > bound + 0.2 && fwd < bound + 0.05 ? EXIT_SUCCESS : EXIT_FAILURE;
}
