/* examples/custom_cell.c: building your own recurrent cells from tapegrad's ops (a peephole
   LSTM and PyTorch's GRU), checking their gradients, and training them on a memory task. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"

/*
 * Legend: B batch, T time, K symbols (the input size), H hidden.
 *
 * A cell is a struct of parameters and a step function written with ops: the tape records
 * every op, so backward comes for free. Nothing here is special to the library's own
 * cells; nn/lstm.c is written the same way.
 *
 * The task: read T = 20 random symbols out of K = 4 and, after the last one, say which
 * symbol came FIRST. The 19 symbols in between are noise, so the cell has to carry one
 * piece of information across 19 steps. Chance is 25% (loss ln 4 = 1.386).
 */

enum { K = 4, T = 20, B = 32, H = 24, STEPS = 300, EVAL_B = 1000 };

/* ---- cell 1: LSTM with peephole connections (Gers & Schmidhuber, 2000) ---------------
 * The gates also look at the cell state: f and i at the previous c, o at the new one.
 *     combine = concat(h, x)
 *     f  = sigmoid(forget(combine) + p_f * c)
 *     i  = sigmoid(input(combine)  + p_i * c)
 *     g  = tanh(candidate(combine))
 *     c' = f * c + i * g
 *     o  = sigmoid(output(combine) + p_o * c')
 *     h' = o * tanh(c')
 * p_f, p_i, p_o are (H) vectors, broadcast over the batch by tg_mul.
 */
typedef struct peephole_lstm {
    tg_linear forget, input, candidate, output;   /* (H+K) -> H */
    tg_tensor *p_f, *p_i, *p_o;                   /* (H)        */
} peephole_lstm;

static tg_lstm_state peephole_step(tg_tape *tape, const peephole_lstm *m, tg_tensor *x,
                                   tg_lstm_state s)
{
    tg_tensor *combine = tg_concat(tape, s.h, x, 1);
    tg_tensor *f  = tg_sigmoid(tape, tg_add(tape, tg_linear_apply(tape, &m->forget, combine),
                                            tg_mul(tape, m->p_f, s.c)));
    tg_tensor *i  = tg_sigmoid(tape, tg_add(tape, tg_linear_apply(tape, &m->input, combine),
                                            tg_mul(tape, m->p_i, s.c)));
    tg_tensor *g  = tg_tanh(tape, tg_linear_apply(tape, &m->candidate, combine));
    tg_tensor *c  = tg_add(tape, tg_mul(tape, f, s.c), tg_mul(tape, i, g));
    tg_tensor *o  = tg_sigmoid(tape, tg_add(tape, tg_linear_apply(tape, &m->output, combine),
                                            tg_mul(tape, m->p_o, c)));
    tg_tensor *h  = tg_mul(tape, o, tg_tanh(tape, c));
    return (tg_lstm_state){ h, c };
}

static tg_status peephole_init(peephole_lstm *m, tg_params *ps, tg_rng *rng)
{
    tg_init init = { TG_INIT_TORCH, 0, false };
    tg_linear *gates[4] = { &m->forget, &m->input, &m->candidate, &m->output };
    const char *names[4] = { "peep.forget", "peep.input", "peep.candidate", "peep.output" };
    for (int k = 0; k < 4; k++) {
        tg_status st = tg_linear_init(gates[k], ps, names[k], H + K, H, H, &init, rng);
        if (st != TG_OK)
            return st;
    }
    tg_tensor_fill(m->forget.b, 1.0);            /* start by remembering */
    tg_tensor **peeps[3] = { &m->p_f, &m->p_i, &m->p_o };
    const char *pnames[3] = { "peep.p_f", "peep.p_i", "peep.p_o" };
    for (int k = 0; k < 3; k++) {
        *peeps[k] = tg_params_add(ps, pnames[k], 1, (const int64_t[]){ H });
        if (!*peeps[k])
            return TG_ERR_NOMEM;
        tg_tensor_fill_uniform(*peeps[k], rng, -0.2, 0.2);
    }
    return TG_OK;
}

/* ---- cell 2: the GRU as torch.nn.GRU computes it -----------------------------------
 * Unlike the classic GRU (nn/gru.c), the reset gate scales the recurrent term AFTER its
 * matmul, so the input and recurrent parts of the candidate need their own layers:
 *     r  = sigmoid(reset(concat(h, x)))
 *     z  = sigmoid(update(concat(h, x)))
 *     n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
 *     h' = (1 - z) * n + z * h
 */
typedef struct torch_gru {
    tg_linear reset, update;   /* (H+K) -> H */
    tg_linear in_n;            /* K -> H     */
    tg_linear hid_n;           /* H -> H     */
} torch_gru;

static tg_tensor *torch_gru_step(tg_tape *tape, const torch_gru *m, tg_tensor *x, tg_tensor *h)
{
    tg_tensor *combine = tg_concat(tape, h, x, 1);
    tg_tensor *r   = tg_sigmoid(tape, tg_linear_apply(tape, &m->reset, combine));
    tg_tensor *z   = tg_sigmoid(tape, tg_linear_apply(tape, &m->update, combine));
    tg_tensor *n   = tg_tanh(tape, tg_add(tape, tg_linear_apply(tape, &m->in_n, x),
                                          tg_mul(tape, r, tg_linear_apply(tape, &m->hid_n, h))));
    tg_tensor *one_minus_z = tg_add_scalar(tape, tg_scale(tape, z, -1.0), 1.0);
    return tg_add(tape, tg_mul(tape, one_minus_z, n), tg_mul(tape, z, h));
}

static tg_status torch_gru_init(torch_gru *m, tg_params *ps, tg_rng *rng)
{
    tg_init init = { TG_INIT_TORCH, 0, false };
    tg_status st = tg_linear_init(&m->reset, ps, "gru.reset", H + K, H, H, &init, rng);
    if (st == TG_OK)
        st = tg_linear_init(&m->update, ps, "gru.update", H + K, H, H, &init, rng);
    if (st == TG_OK)
        st = tg_linear_init(&m->in_n, ps, "gru.in_n", K, H, H, &init, rng);
    if (st == TG_OK)
        st = tg_linear_init(&m->hid_n, ps, "gru.hid_n", H, H, H, &init, rng);
    if (st == TG_OK)
        tg_tensor_fill(m->update.b, 2.0);        /* z near 1: start by keeping h */
    return st;
}

/* ---- a model: one of the cells, then a linear head on the last hidden state ---------- */
typedef struct model {
    bool peephole;
    peephole_lstm lstm;
    torch_gru gru;
    tg_linear head;            /* H -> K */
    tg_params *ps;
} model;

static tg_status model_init(model *m, bool peephole, tg_dtype dtype, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    memset(m, 0, sizeof *m);
    m->peephole = peephole;
    m->ps = tg_params_new(dtype);
    if (!m->ps)
        return TG_ERR_NOMEM;
    tg_status st = peephole ? peephole_init(&m->lstm, m->ps, &rng)
                            : torch_gru_init(&m->gru, m->ps, &rng);
    if (st == TG_OK)
        st = tg_linear_init(&m->head, m->ps, "head", H, K, H, NULL, &rng);
    return st;
}

/* Logits (n,K) after reading seqs (n sequences of T symbols, row-major). */
static tg_tensor *model_forward(tg_tape *tape, const model *m, const int32_t *seqs, int64_t n)
{
    tg_dtype dt = tg_params_dtype(m->ps);
    tg_tensor *h = tg_tape_tensor(tape, dt, 2, (const int64_t[]){ n, H });   /* zeros */
    tg_tensor *c = tg_tape_tensor(tape, dt, 2, (const int64_t[]){ n, H });
    for (int t = 0; t < T; t++) {
        tg_tensor *x = tg_tape_tensor(tape, dt, 2, (const int64_t[]){ n, K });  /* one-hot */
        if (!x)
            return NULL;
        for (int64_t b = 0; b < n; b++)
            tg_tensor_set(x, b * K + seqs[b * T + t], 1.0);
        if (m->peephole) {
            tg_lstm_state s = peephole_step(tape, &m->lstm, x, (tg_lstm_state){ h, c });
            h = s.h;
            c = s.c;
        } else {
            h = torch_gru_step(tape, &m->gru, x, h);
        }
    }
    return tg_linear_apply(tape, &m->head, h);
}

/* A batch of the task: random sequences; the answer is each one's first symbol. */
static void make_batch(tg_rng *rng, int32_t *seqs, int32_t *answers, int64_t n)
{
    for (int64_t b = 0; b < n; b++) {
        for (int t = 0; t < T; t++)
            seqs[b * T + t] = (int32_t)tg_rng_below(rng, K);
        answers[b] = seqs[b * T];
    }
}

/* ---- gradient check (float64, short sequences so it is quick) ------------------------- */
typedef struct gc_data {
    model *m;
    int32_t seqs[3 * T], answers[3];
} gc_data;

static tg_tensor *gc_loss(tg_tape *tape, void *user)
{
    gc_data *d = user;
    return tg_cross_entropy(tape, model_forward(tape, d->m, d->seqs, 3), d->answers);
}

static int gradcheck_cell(bool peephole)
{
    model m;
    if (model_init(&m, peephole, TG_F64, 7) != TG_OK)
        return 1;
    gc_data d = { .m = &m };
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    make_batch(&rng, d.seqs, d.answers, 3);
    tg_gradcheck_opts opts = { .max_per_tensor = 40 };   /* 40 elements per tensor */
    tg_gradcheck_result r;
    tg_status st = tg_gradcheck_params(m.ps, gc_loss, &d, &opts, &r, NULL);
    printf("gradcheck %-13s float64, %d steps: %lld elements, worst relative error %.2e  %s\n",
           peephole ? "peephole LSTM" : "torch GRU", T, (long long)r.checked, r.max_rel_err,
           st == TG_OK && r.passed ? "ok" : "FAILED");
    tg_params_free(m.ps);
    return st == TG_OK && r.passed ? 0 : 1;
}

/* ---- training ---------------------------------------------------------------------- */
static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double accuracy(tg_tape *tape, const model *m, const int32_t *seqs,
                       const int32_t *answers, int64_t n)
{
    tg_tape_reset(tape);
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *logits = model_forward(tape, m, seqs, n);
    int64_t right = 0;
    for (int64_t b = 0; logits && b < n; b++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (tg_tensor_get(logits, b * K + k) > tg_tensor_get(logits, b * K + best))
                best = k;
        right += best == answers[b];
    }
    tg_tape_set_grad_enabled(tape, true);
    return (double)right / (double)n;
}

static int train_cell(bool peephole)
{
    model m;
    if (model_init(&m, peephole, TG_F32, 1) != TG_OK)
        return 1;
    tg_optim_config cfg = tg_optim_defaults(TG_ADAM);
    cfg.lr = 0.01;
    tg_optim *opt = tg_optim_new(m.ps, &cfg);
    tg_tape *tape = tg_tape_new();
    static int32_t seqs[EVAL_B * T], answers[EVAL_B];
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    if (!opt || !tape)
        return 1;
    printf("\n%s, H=%d, Adam lr %.3g, batch %d: loss (chance ln %d = %.3f)\n",
           peephole ? "peephole LSTM" : "torch GRU", H, cfg.lr, B, K, log((double)K));
    double start = now();
    double avg = 0;
    for (int step = 1; step <= STEPS; step++) {
        make_batch(&rng, seqs, answers, B);
        tg_tape_reset(tape);
        tg_params_zero_grad(m.ps);
        tg_tensor *loss = tg_cross_entropy(tape, model_forward(tape, &m, seqs, B), answers);
        if (tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "step %d: %s\n", step, tg_tape_errmsg(tape));
            return 1;
        }
        tg_clip_grad_norm(m.ps, 5.0);
        tg_optim_step(opt);
        avg += tg_tensor_get(loss, 0);
        if (step % 25 == 0) {
            printf("  step %3d  loss %.3f  |", step, avg / 25);
            for (int bar = 0; bar < (int)(avg / 25 * 30); bar++)
                putchar('#');
            putchar('\n');
            avg = 0;
        }
    }
    make_batch(&rng, seqs, answers, EVAL_B);      /* fresh sequences, never trained on */
    double acc = accuracy(tape, &m, seqs, answers, EVAL_B);
    printf("  held-out accuracy %.1f%% on %d new sequences (chance %.0f%%), %.1f s\n",
           100 * acc, EVAL_B, 100.0 / K, now() - start);
    tg_tape_free(tape);
    tg_optim_free(opt);
    tg_params_free(m.ps);
    return acc > 0.9 ? 0 : 1;
}

int main(void)
{
    int bad = gradcheck_cell(true) + gradcheck_cell(false);
    printf("\ntask: remember the first of %d symbols (K=%d) until the end\n", T, K);
    bad += train_cell(true) + train_cell(false);
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
