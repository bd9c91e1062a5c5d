/* examples/charlm/sample.c: 'charlm sample': generation with temperature, top-k, top-p,
   argmax or beam search, streamed to stdout; a prime from the command line, a file or
   standard input; an interactive mode that keeps the state between prompt lines. */
#include <errno.h>
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

/* Everything a sampling session holds. */
typedef struct sampler {
    const charlm_opts *o;
    charlm_meta meta;
    tg_params *ps;
    tg_charlm m;
    tg_vocab vocab;          /* a view of meta's symbols (not owned)                  */
    tg_tape *tape;
    tg_stack_state *state;   /* (1,H) per layer: everything fed so far                */
    double *logits, *p;      /* (V) the next symbol's logits; scratch                 */
    cand *order;             /* (V) scratch                                           */
    tg_rng rng;
    bool fed;                /* logits hold a prediction                              */
    bool at_line_start;      /* the last byte written was a newline (or none yet)     */
} sampler;

/* Writes symbol id to stdout at once. */
static void emit(sampler *s, int id)
{
    char buf[4];
    int n = tg_vocab_bytes(&s->vocab, id, buf);
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    s->at_line_start = n > 0 && buf[n - 1] == '\n';
}

/* Feeds token tok through the model on state; logits receive the next prediction. */
static int step_state(sampler *s, int32_t tok, tg_stack_state *state, double *logits)
{
    tg_tape_reset(s->tape);
    tg_tape_set_grad_enabled(s->tape, false);
    tg_tensor *lg = tg_charlm_step(s->tape, &s->m, &tok, 1, state);
    if (!lg) {
        errorf("sampling failed: %s", tg_tape_errmsg(s->tape));
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < s->vocab.size; i++)
        logits[i] = tg_tensor_get(lg, i);
    return EXIT_OK;
}

static int feed(sampler *s, int32_t tok)
{
    s->fed = true;
    return step_state(s, tok, s->state, s->logits);
}

static int sampler_open(sampler *s, const charlm_opts *o)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    s->at_line_start = true;
    char err[600];
    int rc = model_load(o->model, &s->meta, &s->ps, &s->m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    s->vocab = (tg_vocab){s->meta.vocab_kind, s->meta.V, s->meta.vocab};
    size_t V = (size_t)s->meta.V;
    s->logits = malloc(V * sizeof *s->logits);
    s->p = malloc(V * sizeof *s->p);
    s->order = malloc(V * sizeof *s->order);
    s->tape = tg_tape_new();
    s->state = tg_stack_state_new(&s->m.rnn, TG_F32, 1);
    if (!s->logits || !s->p || !s->order || !s->tape || !s->state) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    tg_rng_seed(&s->rng, o->cfg.seed);
    return EXIT_OK;
}

static void sampler_close(sampler *s)
{
    tg_stack_state_free(s->state);
    tg_tape_free(s->tape);
    free(s->order);
    free(s->p);
    free(s->logits);
    tg_charlm_deinit(&s->m);
    tg_params_free(s->ps);
    meta_free(&s->meta);
}

/* Maps n bytes of prompt text onto the model's vocabulary: ids (malloc'ed) and *np.
   Unknown symbols are refused (EXIT_USAGE, named) or skipped and reported (--unknown). */
static int encode_prompt(sampler *s, const char *what, const char *bytes, size_t n,
                         int32_t **ids, int64_t *np)
{
    tg_text t;
    *ids = NULL;
    *np = 0;
    if (tg_text_from_memory(&t, bytes, n, s->vocab.kind) != TG_OK ||
        !(*ids = malloc((size_t)(t.n + 1) * sizeof **ids))) {
        tg_text_free(&t);
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    int64_t skipped = 0;
    tg_status st = tg_vocab_encode(&s->vocab, &t, s->o->unknown, *ids, np, &skipped);
    if (st != TG_OK) {
        char d[32];
        errorf("%s: character %s is not in the model's vocabulary", what,
               tg_vocab_describe(t.kind, t.symbols[*np], d));
        tg_text_free(&t);
        free(*ids);
        *ids = NULL;
        return EXIT_USAGE;
    }
    if (skipped > 0)
        fprintf(stderr, "charlm sample: %s: skipped %lld character%s outside the model's "
                "vocabulary\n", what, (long long)skipped, skipped == 1 ? "" : "s");
    tg_text_free(&t);
    return EXIT_OK;
}

/* Feeds ids[0..n) and echoes them (the prime is printed as the model reads it). */
static int feed_prompt(sampler *s, const int32_t *ids, int64_t n, bool echo)
{
    for (int64_t i = 0; i < n; i++) {
        if (echo)
            emit(s, ids[i]);
        int rc = feed(s, ids[i]);
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

/* Without a prime: start after a newline (not printed), as if at the start of a line,
   or from a random symbol when the vocabulary has no newline. */
static int start_unprimed(sampler *s)
{
    int nl = tg_vocab_find(&s->vocab, '\n');
    if (nl >= 0)
        return feed(s, nl);
    int32_t tok = (int32_t)tg_rng_below(&s->rng, s->vocab.size);
    emit(s, tok);
    return feed(s, tok);
}

/* Samples and streams len symbols after the current prediction. */
static int generate(sampler *s, int64_t len)
{
    for (int64_t k = 0; k < len; k++) {
        int32_t tok = (int32_t)choose(s->logits, s->vocab.size, s->o, &s->rng, s->p, s->order);
        emit(s, tok);
        if (k == len - 1 && !s->o->interactive)
            break;   /* no need to feed the last symbol */
        int rc = feed(s, tok);
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

/* Reads all of f into a malloc'ed buffer (*n bytes). */
static char *read_all(FILE *f, size_t *n)
{
    size_t cap = 4096;
    char *buf = malloc(cap);
    *n = 0;
    while (buf) {
        if (*n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + *n, 1, cap - *n, f);
        *n += got;
        if (got == 0)
            break;
    }
    return buf;
}

/* The prime's bytes: --prime TEXT, --prime - / --prime-file - (stdin), --prime-file FILE. */
static int load_prime(const charlm_opts *o, char **bytes, size_t *n, const char **what)
{
    const char *file = o->prime_file ? o->prime_file : strcmp(o->prime, "-") == 0 ? "-" : NULL;
    *what = o->prime_file ? "--prime-file" : "--prime";
    if (!file) {
        *n = strlen(o->prime);
        *bytes = malloc(*n + 1);
        if (*bytes)
            memcpy(*bytes, o->prime, *n + 1);
    } else {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (!f) {
            errorf("%s: cannot open '%s': %s", *what, file, strerror(errno));
            return EXIT_RUNTIME;
        }
        *bytes = read_all(f, n);
        bool failed = ferror(f);
        if (f != stdin)
            fclose(f);
        if (failed) {
            free(*bytes);
            errorf("%s: cannot read '%s'", *what, file);
            return EXIT_RUNTIME;
        }
    }
    if (!*bytes) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* --interactive: each line of stdin is fed (with its newline, when the vocabulary has
   one), then --len symbols are streamed; the state carries over to the next line. */
static int run_interactive(sampler *s)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = EXIT_OK;
    while (rc == EXIT_OK && (got = getline(&line, &cap, stdin)) >= 0) {
        int32_t *ids;
        int64_t n;
        if ((rc = encode_prompt(s, "input", line, (size_t)got, &ids, &n)) == EXIT_USAGE)
            rc = EXIT_OK;   /* a bad line is reported and skipped; the session goes on */
        else if (rc == EXIT_OK)
            rc = feed_prompt(s, ids, n, false);
        free(ids);
        if (rc == EXIT_OK && !s->fed)
            rc = start_unprimed(s);
        if (rc == EXIT_OK)
            rc = generate(s, s->o->len);
        if (rc == EXIT_OK && !s->at_line_start) {
            putchar('\n');
            s->at_line_start = true;
        }
        fflush(stdout);
    }
    free(line);
    return rc;
}

/* ---- beam search -----------------------------------------------------------------------
 * Keeps the N sequences of highest log-probability: at each step every beam's next symbols
 * are scored (its log-probability plus log softmax of its logits), the N best candidates
 * survive (ties: lower beam, then lower symbol id, so the search is deterministic), and
 * each inherits a copy of its parent's state and is fed its symbol. Width 1 is greedy
 * decoding; a wider beam keeps greedy's sequence among its candidates at every step until
 * a better one displaces it, so its result is never less probable.
 */
typedef struct beam {
    tg_stack_state *state;   /* after feeding the beam's last symbol                    */
    double *logits;          /* (V) its prediction                                      */
    double logp;             /* log-probability of its symbols so far                   */
    int32_t *seq;            /* (len) its symbols                                       */
} beam;

typedef struct beam_cand {
    double score;
    int from, id;
} beam_cand;

static int beam_cand_cmp(const void *a, const void *b)
{
    const beam_cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->from != y->from)
        return x->from - y->from;
    return x->id - y->id;
}

/* log softmax of logits (V) into out. */
static void log_softmax(const double *logits, int V, double *out)
{
    double mx = logits[0], sum = 0;
    for (int i = 1; i < V; i++)
        mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++)
        sum += exp(logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < V; i++)
        out[i] = logits[i] - lse;
}

static void beams_free(beam *b, int n)
{
    for (int i = 0; b && i < n; i++) {
        tg_stack_state_free(b[i].state);
        free(b[i].logits);
        free(b[i].seq);
    }
    free(b);
}

static beam *beams_new(sampler *s, int n, int64_t len)
{
    beam *b = calloc((size_t)n, sizeof *b);
    for (int i = 0; b && i < n; i++) {
        b[i].state = tg_stack_state_new(&s->m.rnn, TG_F32, 1);
        b[i].logits = malloc((size_t)s->vocab.size * sizeof *b[i].logits);
        b[i].seq = malloc((size_t)(len + 1) * sizeof *b[i].seq);
        if (!b[i].state || !b[i].logits || !b[i].seq) {
            beams_free(b, n);
            return NULL;
        }
    }
    return b;
}

/* The N best extensions of the live beams into cands (room for live * V). */
static int beam_rank(sampler *s, const beam *cur, int live, int N, beam_cand *cands)
{
    int V = s->vocab.size, k = 0;
    for (int b = 0; b < live; b++) {
        log_softmax(cur[b].logits, V, s->p);
        for (int i = 0; i < V; i++)
            cands[k++] = (beam_cand){cur[b].logp + s->p[i], b, i};
    }
    qsort(cands, (size_t)k, sizeof *cands, beam_cand_cmp);
    return k < N ? k : N;
}

/* Beam search of width N from the sampler's state: the best sequence into seq (len) and
   its log-probability into *logp. */
static int beam_run(sampler *s, int N, int32_t *seq, double *logp)
{
    int V = s->vocab.size;
    int64_t len = s->o->len;
    beam *cur = beams_new(s, N, len), *next = beams_new(s, N, len);
    beam_cand *cands = malloc((size_t)N * (size_t)V * sizeof *cands);
    int rc = cur && next && cands ? EXIT_OK : EXIT_RUNTIME;
    if (rc != EXIT_OK)
        errorf("out of memory for a beam of %d", N);
    int live = 1;
    if (rc == EXIT_OK) {
        tg_stack_state_copy(cur[0].state, s->state);
        memcpy(cur[0].logits, s->logits, (size_t)V * sizeof *s->logits);
        cur[0].logp = 0;
    }
    for (int64_t t = 0; rc == EXIT_OK && t < len; t++) {
        int keep = beam_rank(s, cur, live, N, cands);
        for (int j = 0; rc == EXIT_OK && j < keep; j++) {
            const beam *from = &cur[cands[j].from];
            beam *to = &next[j];
            memcpy(to->seq, from->seq, (size_t)t * sizeof *to->seq);
            to->seq[t] = cands[j].id;
            to->logp = cands[j].score;
            if (tg_stack_state_copy(to->state, from->state) != TG_OK)
                rc = EXIT_RUNTIME;
            else if (t + 1 < len)   /* the last symbols need no prediction */
                rc = step_state(s, cands[j].id, to->state, to->logits);
        }
        beam *tmp = cur;
        cur = next;
        next = tmp;
        live = keep;
    }
    if (rc == EXIT_OK) {
        memcpy(seq, cur[0].seq, (size_t)len * sizeof *seq);
        *logp = len > 0 ? cur[0].logp : 0.0;
    }
    free(cands);
    beams_free(cur, N);
    beams_free(next, N);
    return rc;
}

/* --beam N: the beam's best sequence, or greedy's when that is more probable (pruning
   can drop greedy's path early), so the result is never less probable than greedy's. */
static int beam_search(sampler *s)
{
    int N = (int)s->o->beam;
    int64_t len = s->o->len;
    int32_t *best = malloc((size_t)(len + 1) * sizeof *best);
    int32_t *greedy = malloc((size_t)(len + 1) * sizeof *greedy);
    double logp = 0, greedy_logp = -INFINITY;
    int rc = best && greedy ? EXIT_OK : EXIT_RUNTIME;
    if (rc != EXIT_OK)
        errorf("out of memory");
    if (rc == EXIT_OK)
        rc = beam_run(s, N, best, &logp);
    if (rc == EXIT_OK && N > 1)
        rc = beam_run(s, 1, greedy, &greedy_logp);
    if (rc == EXIT_OK) {
        const int32_t *out = greedy_logp > logp ? greedy : best;
        for (int64_t t = 0; t < len; t++)
            emit(s, out[t]);
        fprintf(stderr, "beam: width=%d chars=%lld log_prob=%.6f\n", N, (long long)len,
                fmax(logp, greedy_logp));
    }
    free(best);
    free(greedy);
    return rc;
}

int cmd_sample(const charlm_opts *o)
{
    sampler s;
    int rc = sampler_open(&s, o);
    if (rc != EXIT_OK) {
        sampler_close(&s);
        return rc;
    }
    if (o->interactive) {
        rc = run_interactive(&s);
        sampler_close(&s);
        return rc;
    }
    char *bytes = NULL;
    size_t n = 0;
    const char *what;
    int32_t *ids = NULL;
    int64_t np = 0;
    rc = load_prime(o, &bytes, &n, &what);
    if (rc == EXIT_OK)
        rc = encode_prompt(&s, what, bytes, n, &ids, &np);
    if (rc == EXIT_OK)
        rc = np > 0 ? feed_prompt(&s, ids, np, true) : start_unprimed(&s);
    if (rc == EXIT_OK)
        rc = o->beam > 0 ? beam_search(&s) : generate(&s, o->len);
    if (rc == EXIT_OK && !s.at_line_start)
        putchar('\n');   /* the output ends with a newline */
    fflush(stdout);
    free(ids);
    free(bytes);
    sampler_close(&s);
    return rc;
}
