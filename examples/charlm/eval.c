/* examples/charlm/eval.c: validation loss (batched zero-state chunks, or one stream with the
   state carried through) and 'charlm eval'. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"

/* Chunks evaluated together: bounded so the tape's activations stay around 100 MB. */
static int64_t eval_rows(const tg_charlm *m, int seq)
{
    int64_t per_row = (int64_t)seq * m->cfg.hidden * m->cfg.layers;
    int64_t rows = ((int64_t)1 << 21) / (per_row > 0 ? per_row : 1);
    if (rows > 128)
        rows = 128;
    return rows < 1 ? 1 : rows;
}

int eval_loss(const tg_charlm *m, const int32_t *ids, int64_t n, int seq, double *loss,
              int64_t *chars, char *err, size_t errsize)
{
    int64_t chunks = n >= (int64_t)seq + 1 ? (n - 1) / seq : 0;
    *loss = NAN;
    *chars = 0;
    if (chunks == 0)
        return EXIT_OK;
    int64_t rows = eval_rows(m, seq);
    if (rows > chunks)
        rows = chunks;
    int64_t last = chunks % rows;
    tg_dtype dtype = m->head.w->dtype;
    tg_tape *tape = tg_tape_new();
    int32_t *in = malloc((size_t)(rows * seq) * sizeof *in);
    int32_t *tgt = malloc((size_t)(rows * seq) * sizeof *tgt);
    tg_stack_state *full = tg_stack_state_new(&m->rnn, dtype, rows);
    tg_stack_state *part = last ? tg_stack_state_new(&m->rnn, dtype, last) : NULL;
    int rc = EXIT_OK;
    if (!tape || !in || !tgt || !full || (last && !part)) {
        snprintf(err, errsize, "out of memory evaluating");
        rc = EXIT_RUNTIME;
        goto done;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    double total = 0.0;
    for (int64_t c0 = 0; c0 < chunks; c0 += rows) {
        int64_t r = chunks - c0 < rows ? chunks - c0 : rows;
        tg_stack_state *st = r == rows ? full : part;
        tg_stack_state_zero(st);
        for (int64_t i = 0; i < r; i++) {
            memcpy(in + i * seq, ids + (c0 + i) * seq, (size_t)seq * sizeof *in);
            memcpy(tgt + i * seq, ids + (c0 + i) * seq + 1, (size_t)seq * sizeof *tgt);
        }
        tg_tape_reset(tape);
        tg_tape_set_grad_enabled(tape, false);
        tg_tensor *l = tg_charlm_loss(tape, m, in, tgt, r, seq, st, false, &rng);
        if (!l) {
            snprintf(err, errsize, "evaluation failed: %s", tg_tape_errmsg(tape));
            rc = EXIT_RUNTIME;
            goto done;
        }
        total += tg_tensor_get(l, 0) * (double)(r * seq);
    }
    *chars = chunks * seq;
    *loss = total / (double)*chars;
done:
    tg_stack_state_free(full);
    tg_stack_state_free(part);
    free(in);
    free(tgt);
    tg_tape_free(tape);
    return rc;
}

int eval_loss_stateful(const tg_charlm *m, const int32_t *ids, int64_t n, int seq,
                       double *loss, int64_t *chars, char *err, size_t errsize)
{
    *loss = NAN;
    *chars = 0;
    if (n < 2)
        return EXIT_OK;
    tg_dtype dtype = m->head.w->dtype;
    tg_tape *tape = tg_tape_new();
    tg_stack_state *st = tg_stack_state_new(&m->rnn, dtype, 1);
    int rc = EXIT_OK;
    if (!tape || !st) {
        snprintf(err, errsize, "out of memory evaluating");
        rc = EXIT_RUNTIME;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    double total = 0.0;
    /* windows of seq predictions (the last one shorter); the state runs on */
    for (int64_t pos = 0; rc == EXIT_OK && pos < n - 1; pos += seq) {
        int64_t T = n - 1 - pos < seq ? n - 1 - pos : seq;
        tg_tape_reset(tape);
        tg_tape_set_grad_enabled(tape, false);
        tg_tensor *l = tg_charlm_loss(tape, m, ids + pos, ids + pos + 1, 1, T, st, false, &rng);
        if (!l) {
            snprintf(err, errsize, "evaluation failed: %s", tg_tape_errmsg(tape));
            rc = EXIT_RUNTIME;
            break;
        }
        total += tg_tensor_get(l, 0) * (double)T;
    }
    if (rc == EXIT_OK) {
        *chars = n - 1;
        *loss = total / (double)*chars;
    }
    tg_stack_state_free(st);
    tg_tape_free(tape);
    return rc;
}

int eval_split(const tg_charlm *m, const int32_t *ids, int64_t n, int seq, bool stateful,
               double *loss, int64_t *chars, char *err, size_t errsize)
{
    return stateful ? eval_loss_stateful(m, ids, n, seq, loss, chars, err, errsize)
                    : eval_loss(m, ids, n, seq, loss, chars, err, errsize);
}

int cmd_eval(const charlm_opts *o)
{
    char err[600];
    charlm_meta meta;
    tg_params *ps = NULL;
    tg_charlm m = {0};
    int rc = model_load(o->model, &meta, &ps, &m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    corpus c;
    rc = corpus_load_as(o->data, meta.vocab_kind, meta.vocab, meta.V, o->unknown, &c, err,
                        sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        goto out;
    }
    double val_frac = o->given[OPT_VAL_FRAC] ? o->cfg.val_frac : meta.cfg.val_frac;
    bool all = strcmp(o->split, "all") == 0;
    int64_t nval = all ? c.n : corpus_val_count(c.n, val_frac);
    int seq = meta.cfg.seq;
    if (nval < (int64_t)seq + 1) {
        errorf("%s: the %s has %lld characters; evaluation needs at least %d (seq + 1)",
               o->data, all ? "file" : "validation split", (long long)nval, seq + 1);
        rc = EXIT_RUNTIME;
        goto out_corpus;
    }
    char reg[128];
    printf("model: %s, %s %d x %d%s, vocabulary %d, %lld steps trained\n", o->model,
           meta.cfg.cell->name, meta.cfg.layers, meta.cfg.hidden,
           model_regularisers(&meta.cfg, reg, sizeof reg), meta.V, (long long)meta.step);
    if (all)
        printf("data: %s, all %lld characters\n", o->data, (long long)c.n);
    else
        printf("data: %s, validation split: the last %lld of %lld characters (%g)\n", o->data,
               (long long)nval, (long long)c.n, val_frac);
    if (c.skipped > 0)
        printf("data: skipped %lld characters outside the model's vocabulary\n",
               (long long)c.skipped);
    if (o->stateful)
        printf("mode: stateful (one stream, the state carried through)\n");
    fflush(stdout);
    double loss;
    int64_t chars;
    rc = eval_split(&m, c.ids + (c.n - nval), nval, seq, o->stateful, &loss, &chars, err,
                    sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        goto out_corpus;
    }
    double bpc = loss / log(2.0);
    double ppl = exp(loss);
    printf("loss        %.4f nats/char\nbits/char   %.4f\nperplexity  %.4f\n", loss, bpc, ppl);
    printf("eval: loss=%.6f bpc=%.6f perplexity=%.6f chars=%lld\n", loss, bpc, ppl,
           (long long)chars);
    fflush(stdout);
out_corpus:
    corpus_free(&c);
out:
    tg_charlm_deinit(&m);
    tg_params_free(ps);
    meta_free(&meta);
    return rc;
}
