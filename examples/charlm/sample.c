/* examples/charlm/sample.c: 'charlm sample': generation with temperature, top-k, top-p or
   argmax, streamed to stdout character by character. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/charlm/charlm.h"

typedef struct cand {
    double p;
    int i;
} cand;

/* Descending probability, ties by ascending index: a total order, so qsort is
   deterministic. */
static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Picks the next token from logits (V). p and order are scratch of V entries. */
static int choose(const double *logits, int V, const charlm_opts *o, tg_rng *rng, double *p,
                  cand *order)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (o->argmax)
        return best;
    double mx = logits[best] / o->temperature;
    for (int i = 0; i < V; i++)
        p[i] = exp(logits[i] / o->temperature - mx);
    bool filter = (o->top_k > 0 && o->top_k < V) || o->top_p < 1.0;
    if (filter) {
        for (int i = 0; i < V; i++)
            order[i] = (cand){p[i], i};
        qsort(order, (size_t)V, sizeof *order, cand_cmp);
        int keep = V;
        if (o->top_k > 0 && o->top_k < keep)
            keep = (int)o->top_k;
        if (o->top_p < 1.0) {
            double total = 0.0;
            for (int i = 0; i < V; i++)
                total += order[i].p;
            double cum = 0.0;
            int k = 0;
            while (k < keep) {
                cum += order[k].p;
                k++;
                if (cum >= o->top_p * total)
                    break;
            }
            keep = k;
        }
        for (int i = keep; i < V; i++)
            p[order[i].i] = 0.0;
    }
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += p[i];
    double u = tg_rng_uniform(rng) * sum;
    double acc = 0.0;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0.0)
            continue;
        acc += p[i];
        last = i;
        if (u < acc)
            return i;
    }
    return last; /* rounding left u at the very top */
}

static void put_cp(uint32_t cp)
{
    char buf[4];
    int n = tg_utf8_encode(cp, buf);
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
}

int cmd_sample(const charlm_opts *o)
{
    char err[600];
    charlm_meta meta;
    tg_params *ps = NULL;
    tg_charlm m;
    int rc = model_load(o->model, &meta, &ps, &m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    size_t plen = strlen(o->prime);
    uint32_t *prime = malloc((plen + 1) * sizeof *prime);
    int32_t *prime_ids = malloc((plen + 1) * sizeof *prime_ids);
    int V = meta.V;
    double *logits = malloc((size_t)V * sizeof *logits);
    double *p = malloc((size_t)V * sizeof *p);
    cand *order = malloc((size_t)V * sizeof *order);
    tg_tape *tape = tg_tape_new();
    tg_stack_state *state = tg_stack_state_new(&m.rnn, TG_F32, 1);
    if (!prime || !prime_ids || !logits || !p || !order || !tape || !state) {
        errorf("out of memory");
        rc = EXIT_RUNTIME;
        goto out;
    }
    int64_t np = tg_utf8_decode((const unsigned char *)o->prime, plen, prime, NULL);
    for (int64_t i = 0; i < np; i++) {
        prime_ids[i] = vocab_find(meta.vocab, V, prime[i]);
        if (prime_ids[i] < 0) {
            char d[32];
            errorf("--prime: character %s is not in the model's vocabulary",
                   tg_vocab_describe(TG_VOCAB_CHARS, prime[i], d));
            rc = EXIT_USAGE;
            goto out;
        }
    }
    tg_rng rng;
    tg_rng_seed(&rng, o->cfg.seed);
    if (np == 0) {
        /* no prime: start after a newline (not printed) as if at the start of a line, or
           from a random character when the text has no newlines */
        int nl = vocab_find(meta.vocab, V, '\n');
        if (nl >= 0) {
            prime_ids[0] = nl;
        } else {
            prime_ids[0] = (int32_t)tg_rng_below(&rng, V);
            put_cp(meta.vocab[prime_ids[0]]);
        }
        np = 1;
    } else {
        fwrite(o->prime, 1, plen, stdout);
        fflush(stdout);
    }
    uint32_t last_cp = np ? meta.vocab[prime_ids[np - 1]] : '\n';
    for (int64_t k = 0; k < np + o->len; k++) {
        int32_t tok;
        if (k < np) {
            tok = prime_ids[k];
        } else {
            tok = (int32_t)choose(logits, V, o, &rng, p, order);
            last_cp = meta.vocab[tok];
            put_cp(last_cp);
            if (k == np + o->len - 1)
                break; /* no need to feed the last character */
        }
        tg_tape_reset(tape);
        tg_tape_set_grad_enabled(tape, false);
        tg_tensor *lg = tg_charlm_step(tape, &m, &tok, 1, state);
        if (!lg) {
            errorf("sampling failed: %s", tg_tape_errmsg(tape));
            rc = EXIT_RUNTIME;
            goto out;
        }
        for (int i = 0; i < V; i++)
            logits[i] = tg_tensor_get(lg, i);
    }
    if (isatty(STDOUT_FILENO) && last_cp != '\n')
        putchar('\n');
    fflush(stdout);
out:
    tg_stack_state_free(state);
    tg_tape_free(tape);
    free(order);
    free(p);
    free(logits);
    free(prime_ids);
    free(prime);
    tg_params_free(ps);
    meta_free(&meta);
    return rc;
}
