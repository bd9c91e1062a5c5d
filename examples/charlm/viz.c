/* examples/charlm/viz.c: 'charlm viz': runs a model over a text with a tg_recorder on the
   tape and writes one self-contained HTML page of every layer's gates, unit by unit. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"
#include "examples/charlm/viz.h"

/* Legend: L layers, H hidden units, V vocabulary, N characters shown, Q named quantities. */

#define TOP_K 5          /* predictions kept per character                       */
#define MAX_Q 32         /* named quantities per layer                           */
#define PICKS_PER_FEATURE 2

typedef struct viz_opts {
    const char *model, *text, *prime, *out, *title;
    bool skip_unknown;       /* --unknown skip                                     */
    int64_t len, from, chars;
    double temperature;
    uint64_t seed;
    int threads;
} viz_opts;

/* How a quantity's values are bounded, which fixes its quantisation and colours. */
typedef enum qkind {
    Q_GATE,   /* a sigmoid gate, in [0,1]: saturated below 0.1 or above 0.9     */
    Q_TANH,   /* in [-1,1] (tanh-valued): saturated below -0.9 or above 0.9    */
    Q_FREE    /* unbounded (the LSTM cell): scaled per unit by its max |value| */
} qkind;

static const char *const qkind_names[] = { "gate", "tanh", "free" };

/* Simple text features the units are correlated with. */
enum { F_QUOTE, F_LINEPOS, F_AFTER_NL, F_SPEAKER, F_WORDPOS, F_COUNT };
static const char *const feature_names[F_COUNT] = {
    "inside quotes", "position in line", "after newline", "speaker line (ends with ':')",
    "position in word",
};

typedef struct pick {
    int feature, layer, q, unit;
    double r;
} pick;

typedef struct viz_run {
    charlm_meta meta;
    tg_params *ps;
    tg_charlm m;
    int L, H, V;
    int64_t n;               /* characters                                       */
    uint32_t *cps;           /* n code points                                    */
    int32_t *ids;            /* n token ids                                      */
    uint16_t *top_id;        /* n x TOP_K: the likeliest next characters         */
    float *top_p;            /* n x TOP_K: their probabilities                   */
    float *p_next;           /* n: probability given to the actual next char     */
    tg_recorder *rec;
    int nq;
    const char *qname[MAX_Q];
    qkind qk[MAX_Q];
    tg_series series[TG_MAX_LAYERS][MAX_Q];
    float *scale;            /* L x Q x H: max |value| (Q_FREE quantities)       */
    bool feature_on[F_COUNT];
    int npicks;
    pick picks[F_COUNT * PICKS_PER_FEATURE];
    const char *title;       /* the page's title                                 */
    const char *source;      /* what the text is, for the page's header          */
    char source_buf[300];
} viz_run;

/* ---- options ------------------------------------------------------------------ */

void viz_usage(FILE *f)
{
    fputs("usage: charlm viz --model FILE (--text FILE | --prime TEXT [--len N]) --out PAGE.html\n"
          "\n"
          "Runs the model over a text (or over text it samples after --prime) with a recorder\n"
          "on the tape, and writes ONE self-contained HTML page (no network, no other files):\n"
          "the text coloured character by character by a chosen gate, cell or hidden unit of\n"
          "a chosen layer; the model's top-5 next-character predictions on hover; each\n"
          "layer's gate saturation chart; and the units that correlate best with simple text\n"
          "features (inside quotes, position in line, after newline, ...). Keys: left/right\n"
          "unit, up/down layer, 1-9 quantity, [ ] character. The page honours a fragment\n"
          "such as #layer=1&unit=7&q=forget&at=120 (at: the character the inspector shows).\n"
          "\n"
          "Options:\n"
          "  --model FILE        a checkpoint written by 'charlm train --save' (required)\n"
          "  --plugin FILE.so    load a shared object that registers cell types (repeatable)\n"
          "  --text FILE         UTF-8 text to run the model over\n"
          "  --from N            start at character N of --text (default 0)\n"
          "  --chars N           show at most N characters of --text (default 10000)\n"
          "  --prime TEXT        instead of --text: start with TEXT, then sample --len more\n"
          "  --len N             characters to sample after --prime (default 1000)\n"
          "  --temperature X     sampling temperature, X > 0 (default 0.8)\n"
          "  --seed N            sampling seed (default 1)\n"
          "  --out FILE          the page to write (required)\n"
          "  --title TEXT        the page's title (default: the model file's name)\n"
          "  --unknown POLICY    a character outside the model's vocabulary: refuse\n"
          "                      (default) or skip (leave it out, report how many)\n"
          "  --threads N         OpenMP threads (default: all cores)\n"
          "  --help              show this help and exit\n"
          "\n"
          "Example:\n"
          "  charlm viz --model lm.ckpt --text examples/data/tinyshakespeare.txt --chars 5000 \\\n"
          "             --out gates.html\n", f);
}

static bool parse_i64(const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        errorf("%s: '%s' is not an integer in [%lld, %lld]", opt, v, (long long)lo,
               (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

/* Returns EXIT_OK, EXIT_USAGE or EXIT_RUNTIME (a --plugin failed; message printed) or -1
   after --help. */
static int parse_args(int argc, char **argv, viz_opts *o)
{
    *o = (viz_opts){ .len = 1000, .chars = 10000, .temperature = 0.8, .seed = 1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            viz_usage(stdout);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0) {
            errorf("unexpected argument '%s' (see charlm viz --help)", a);
            return EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            errorf("%s needs a value (see charlm viz --help)", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        int64_t x;
        if (strcmp(a, "--model") == 0) {
            o->model = v;
        } else if (strcmp(a, "--plugin") == 0) {
            int rc = plugin_load(v);
            if (rc != EXIT_OK)
                return rc;
        } else if (strcmp(a, "--text") == 0) {
            o->text = v;
        } else if (strcmp(a, "--prime") == 0) {
            o->prime = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--title") == 0) {
            o->title = v;
        } else if (strcmp(a, "--unknown") == 0) {
            if (strcmp(v, "refuse") != 0 && strcmp(v, "skip") != 0) {
                errorf("--unknown: expected refuse or skip, got '%s'", v);
                return EXIT_USAGE;
            }
            o->skip_unknown = strcmp(v, "skip") == 0;
        } else if (strcmp(a, "--len") == 0) {
            if (!parse_i64(a, v, 0, 1000000, &o->len))
                return EXIT_USAGE;
        } else if (strcmp(a, "--from") == 0) {
            if (!parse_i64(a, v, 0, INT64_MAX / 2, &o->from))
                return EXIT_USAGE;
        } else if (strcmp(a, "--chars") == 0) {
            if (!parse_i64(a, v, 1, 1000000, &o->chars))
                return EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_i64(a, v, 0, INT64_MAX, &x))
                return EXIT_USAGE;
            o->seed = (uint64_t)x;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_i64(a, v, 1, 1024, &x))
                return EXIT_USAGE;
            o->threads = (int)x;
        } else if (strcmp(a, "--temperature") == 0) {
            char *end;
            o->temperature = strtod(v, &end);
            if (end == v || *end || !(o->temperature > 0) || o->temperature > 1e6) {
                errorf("--temperature: '%s' is not a number > 0", v);
                return EXIT_USAGE;
            }
        } else {
            errorf("unknown option '%s' (see charlm viz --help)", a);
            return EXIT_USAGE;
        }
    }
    if (!o->model || !o->out) {
        errorf("%s is required (see charlm viz --help)", !o->model ? "--model" : "--out");
        return EXIT_USAGE;
    }
    if (!o->text == !o->prime) {
        errorf("give exactly one of --text FILE and --prime TEXT (see charlm viz --help)");
        return EXIT_USAGE;
    }
    if (o->prime && !o->prime[0]) {
        errorf("--prime: give at least one character");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---- the text --------------------------------------------------------------------- */

/* Reads path whole into a malloc'ed buffer; NULL with errno set on failure. */
static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = p;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
        errno = EIO;
    }
    fclose(f);
    *size = n;
    return buf;
}

/* Maps cps[0..n) onto the model's vocabulary into ids; with skip, unknown characters
   are dropped from cps (and reported). Returns the count kept, or -1 (message printed)
   for an unknown one without skip. what names the source. */
static int64_t map_to_vocab(viz_run *v, uint32_t *cps, int64_t n, int32_t *ids,
                            const char *what, int64_t offset, bool skip)
{
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int id = vocab_find(v->meta.vocab, v->V, cps[i]);
        if (id < 0 && !skip) {
            char d[32];
            errorf("%s: character %s at position %lld is not in the model's vocabulary", what,
                   tg_vocab_describe(TG_VOCAB_CHARS, cps[i], d), (long long)(offset + i));
            return -1;
        }
        if (id >= 0) {
            cps[kept] = cps[i];
            ids[kept++] = id;
        }
    }
    if (kept < n)
        fprintf(stderr, "charlm viz: %s: skipped %lld characters outside the model's "
                "vocabulary\n", what, (long long)(n - kept));
    return kept;
}

/* Fills v->cps/ids (n slots) with the known part of the text; returns its length or -1. */
static int64_t load_text(viz_run *v, const viz_opts *o)
{
    if (o->text) {
        size_t size;
        unsigned char *bytes = read_file(o->text, &size);
        if (!bytes) {
            errorf("cannot read %s: %s", o->text, strerror(errno));
            return -1;
        }
        uint32_t *all = malloc((size + 1) * sizeof *all);
        if (!all) {
            free(bytes);
            errorf("out of memory");
            return -1;
        }
        int64_t total = tg_utf8_decode(bytes, size, all, NULL);
        free(bytes);
        if (o->from >= total) {
            errorf("--from %lld: %s has only %lld characters", (long long)o->from, o->text,
                   (long long)total);
            free(all);
            return -1;
        }
        int64_t n = total - o->from < o->chars ? total - o->from : o->chars;
        v->cps = malloc((size_t)n * sizeof *v->cps);
        v->ids = malloc((size_t)n * sizeof *v->ids);
        if (!v->cps || !v->ids) {
            free(all);
            errorf("out of memory");
            return -1;
        }
        memcpy(v->cps, all + o->from, (size_t)n * sizeof *v->cps);
        free(all);
        if ((n = map_to_vocab(v, v->cps, n, v->ids, o->text, o->from, o->skip_unknown)) < 1) {
            if (n == 0)
                errorf("%s: no character of it is in the model's vocabulary", o->text);
            return -1;
        }
        v->n = n;
        const char *base = strrchr(o->text, '/');
        snprintf(v->source_buf, sizeof v->source_buf, "%s, characters %lld to %lld",
                 base ? base + 1 : o->text, (long long)o->from, (long long)(o->from + n));
        v->source = v->source_buf;
        return n;
    }
    size_t plen = strlen(o->prime);
    int64_t cap = (int64_t)plen + o->len;
    v->cps = malloc((size_t)cap * sizeof *v->cps);
    v->ids = malloc((size_t)cap * sizeof *v->ids);
    if (!v->cps || !v->ids) {
        errorf("out of memory");
        return -1;
    }
    int64_t np = tg_utf8_decode((const unsigned char *)o->prime, plen, v->cps, NULL);
    if ((np = map_to_vocab(v, v->cps, np, v->ids, "--prime", 0, o->skip_unknown)) < 0)
        return -1;
    v->n = np + o->len;
    snprintf(v->source_buf, sizeof v->source_buf,
             "%lld characters sampled at temperature %g (seed %llu) after a %lld-character "
             "prime", (long long)o->len, o->temperature, (unsigned long long)o->seed,
             (long long)np);
    v->source = v->source_buf;
    return np;
}

/* ---- running the model -------------------------------------------------------------- */

/* Draws a token from logits at temperature T. */
static int32_t sample_token(const double *logits, int V, double T, tg_rng *rng, double *p)
{
    double mx = logits[0];
    for (int i = 1; i < V; i++)
        mx = fmax(mx, logits[i]);
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += p[i] = exp((logits[i] - mx) / T);
    double u = tg_rng_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < V; i++) {
        acc += p[i];
        if (u < acc)
            return i;
    }
    return V - 1;
}

/* Steps the model through the text one character at a time (batch 1, no gradients),
   sampling after the first `known` characters; the recorder keeps every named gate. */
static int run_model(viz_run *v, int64_t known, const viz_opts *o)
{
    int V = v->V;
    double *logits = malloc((size_t)V * sizeof *logits);
    double *prob = malloc((size_t)V * sizeof *prob);
    double *scratch = malloc((size_t)V * sizeof *scratch);
    v->top_id = malloc((size_t)v->n * TOP_K * sizeof *v->top_id);
    v->top_p = malloc((size_t)v->n * TOP_K * sizeof *v->top_p);
    v->p_next = malloc((size_t)v->n * sizeof *v->p_next);
    tg_tape *tape = tg_tape_new();
    tg_stack_state *state = tg_stack_state_new(&v->m.rnn, TG_F32, 1);
    v->rec = tg_recorder_new(v->L);
    int rc = EXIT_RUNTIME;
    if (!logits || !prob || !scratch || !v->top_id || !v->top_p || !v->p_next || !tape ||
        !state || !v->rec) {
        errorf("out of memory");
        goto out;
    }
    tg_recorder_attach(v->rec, tape);
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    for (int64_t t = 0; t < v->n; t++) {
        if (t >= known) {
            v->ids[t] = sample_token(logits, V, o->temperature, &rng, scratch);
            v->cps[t] = v->meta.vocab[v->ids[t]];
        }
        if (t > 0)
            v->p_next[t - 1] = (float)prob[v->ids[t]];
        tg_tape_reset(tape);
        tg_tape_set_grad_enabled(tape, false);
        tg_tensor *lg = tg_charlm_step(tape, &v->m, &v->ids[t], 1, state);
        if (!lg) {
            errorf("the model failed at character %lld: %s", (long long)t,
                   tg_tape_errmsg(tape));
            goto out;
        }
        double mx = -INFINITY, sum = 0.0;
        for (int i = 0; i < V; i++) {
            logits[i] = tg_tensor_get(lg, i);
            mx = fmax(mx, logits[i]);
        }
        for (int i = 0; i < V; i++)
            sum += prob[i] = exp(logits[i] - mx);
        for (int i = 0; i < V; i++)
            prob[i] /= sum;
        /* top-k by repeated selection: ties go to the lower id, deterministically */
        for (int k = 0; k < TOP_K; k++) {
            int best = -1;
            for (int i = 0; i < V; i++) {
                bool taken = false;
                for (int j = 0; j < k; j++)
                    taken |= v->top_id[t * TOP_K + j] == i;
                if (!taken && k < V && (best < 0 || prob[i] > prob[best]))
                    best = i;
            }
            v->top_id[t * TOP_K + k] = (uint16_t)(best < 0 ? 0 : best);
            v->top_p[t * TOP_K + k] = best < 0 ? 0.0f : (float)prob[best];
        }
    }
    v->p_next[v->n - 1] = NAN;
    if (tg_recorder_status(v->rec) != TG_OK) {
        errorf("recording the gates failed: %s", tg_status_str(tg_recorder_status(v->rec)));
        goto out;
    }
    rc = EXIT_OK;
out:
    tg_recorder_attach(NULL, tape);
    tg_stack_state_free(state);
    tg_tape_free(tape);
    free(scratch);
    free(prob);
    free(logits);
    return rc;
}

/* ---- what was recorded -------------------------------------------------------------- */

/* The guide's sigmoid gates; any other quantity whose values all lie in [0,1] is drawn
   as a gate too (a user's cell names its gates as it likes). */
static bool is_sigmoid_gate(const char *name)
{
    static const char *const gates[] = { "forget", "input", "output", "update", "reset" };
    for (size_t i = 0; i < sizeof gates / sizeof gates[0]; i++)
        if (strcmp(name, gates[i]) == 0)
            return true;
    return false;
}

/* The quantities are the names layer 0 reported, in report order, that every layer
   reported once per character with H values. */
static int collect_quantities(viz_run *v)
{
    int count = tg_recorder_count(v->rec);
    for (int i = 0; i < count && v->nq < MAX_Q; i++) {
        tg_series s;
        tg_recorder_series(v->rec, i, &s);
        if (s.layer != 0)
            continue;
        bool ok = true;
        for (int l = 0; l < v->L && ok; l++) {
            tg_series *sl = &v->series[l][v->nq];
            ok = tg_recorder_get(v->rec, l, s.name, sl) == TG_OK && sl->rows == v->n &&
                 sl->width == v->H;
        }
        if (!ok)
            continue;
        int q = v->nq++;
        v->qname[q] = v->series[0][q].name;
        double lo = INFINITY, hi = -INFINITY;
        for (int l = 0; l < v->L; l++)
            for (int64_t k = 0; k < v->n * v->H; k++) {
                double x = tg_series_at(&v->series[l][q], 0, k);
                lo = fmin(lo, x);
                hi = fmax(hi, x);
            }
        v->qk[q] = is_sigmoid_gate(v->qname[q]) || (lo >= 0.0 && hi <= 1.0) ? Q_GATE
                   : lo >= -1.0 && hi <= 1.0     ? Q_TANH
                                                 : Q_FREE;
    }
    if (v->nq == 0) {
        errorf("the model reported no named gates");
        return EXIT_RUNTIME;
    }
    v->scale = calloc((size_t)v->L * v->nq * v->H, sizeof *v->scale);
    if (!v->scale) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    for (int l = 0; l < v->L; l++)
        for (int q = 0; q < v->nq; q++)
            for (int u = 0; u < v->H; u++) {
                double m = 0.0;
                for (int64_t t = 0; t < v->n; t++)
                    m = fmax(m, fabs(tg_series_at(&v->series[l][q], t, u)));
                v->scale[((size_t)l * v->nq + q) * v->H + u] = m > 0 ? (float)m : 1.0f;
            }
    return EXIT_OK;
}

/* The byte (0..255) that stands for value x of quantity q, unit u of layer l. */
static unsigned char quantise(const viz_run *v, int l, int q, int u, double x)
{
    double y;
    switch (v->qk[q]) {
    case Q_GATE:
        y = x;
        break;
    case Q_TANH:
        y = (x + 1.0) * 0.5;
        break;
    default:
        y = (x / v->scale[((size_t)l * v->nq + q) * v->H + u] + 1.0) * 0.5;
        break;
    }
    y = y > 1 ? 1 : y >= 0 ? y : 0;   /* NaN (a diverged model) shows as the low end */
    return (unsigned char)lround(y * 255.0);
}

/* ---- text features and the units that follow them ------------------------------------ */

static bool is_letter(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c != 0xD7 &&
                                                                c != 0xF7 && c < 0x2000);
}

/* f (F_COUNT x n): the value of every feature at every character. */
static void compute_features(const viz_run *v, double *f)
{
    int64_t n = v->n;
    const uint32_t *c = v->cps;
    bool quoted = false;
    int64_t col = 0, word = 0, line_start = 0;
    for (int64_t t = 0; t < n; t++) {
        bool quote = c[t] == '"' || c[t] == 0x201C || c[t] == 0x201D;
        bool opening = quote && (c[t] == 0x201C || (c[t] == '"' && !quoted));
        if (opening)
            quoted = true;
        f[F_QUOTE * n + t] = quoted;
        if (quote && !opening)
            quoted = false;
        f[F_LINEPOS * n + t] = (double)col;
        f[F_AFTER_NL * n + t] = t > 0 && c[t - 1] == '\n';
        word = is_letter(c[t]) ? word + 1 : 0;
        f[F_WORDPOS * n + t] = (double)word;
        col = c[t] == '\n' ? 0 : col + 1;
        if (c[t] == '\n' || t == n - 1) {   /* the line [line_start, t] is complete */
            int64_t end = c[t] == '\n' ? t : t + 1;
            bool speaker = end > line_start && c[end - 1] == ':';
            for (int64_t k = line_start; k <= t; k++)
                f[F_SPEAKER * n + k] = speaker;
            line_start = t + 1;
        }
    }
}

/* Strongest |r| first; ties by feature, layer, unit (a total order: qsort is stable here). */
static int pick_cmp(const void *a, const void *b)
{
    const pick *p = a, *q = b;
    double x = fabs(p->r), y = fabs(q->r);
    if (x != y)
        return (x < y) - (x > y);
    if (p->feature != q->feature)
        return p->feature - q->feature;
    if (p->layer != q->layer)
        return p->layer - q->layer;
    return p->unit - q->unit;
}

/* Pearson correlation of every (layer, quantity, unit) with every feature that varies;
   keeps the best few units per feature, each unit (layer, unit) once per feature. */
static int rank_units(viz_run *v)
{
    int64_t n = v->n;
    double *f = malloc((size_t)F_COUNT * n * sizeof *f);
    double *x = malloc((size_t)n * sizeof *x);
    int cand_cap = v->L * v->H;
    pick *cand = malloc((size_t)cand_cap * sizeof *cand);
    if (!f || !x || !cand) {
        free(f);
        free(x);
        free(cand);
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    compute_features(v, f);
    for (int k = 0; k < F_COUNT; k++) {
        double *fk = f + (size_t)k * n, mean = 0.0, ss = 0.0;
        for (int64_t t = 0; t < n; t++)
            mean += fk[t];
        mean /= (double)n;
        for (int64_t t = 0; t < n; t++) {
            fk[t] -= mean;
            ss += fk[t] * fk[t];
        }
        v->feature_on[k] = ss > 1e-12 * (double)n;
        if (!v->feature_on[k])
            continue;
        /* best quantity for each unit of each layer */
        for (int l = 0; l < v->L; l++)
            for (int u = 0; u < v->H; u++) {
                pick *best = &cand[l * v->H + u];
                *best = (pick){ k, l, -1, u, 0.0 };
                for (int q = 0; q < v->nq; q++) {
                    double xm = 0.0, sxx = 0.0, sxy = 0.0;
                    for (int64_t t = 0; t < n; t++)
                        xm += x[t] = tg_series_at(&v->series[l][q], t, u);
                    xm /= (double)n;
                    for (int64_t t = 0; t < n; t++) {
                        double d = x[t] - xm;
                        sxx += d * d;
                        sxy += d * fk[t];
                    }
                    double r = sxx > 0 ? sxy / sqrt(sxx * ss) : 0.0;
                    if (best->q < 0 || fabs(r) > fabs(best->r)) {
                        best->q = q;
                        best->r = r;
                    }
                }
            }
        qsort(cand, (size_t)cand_cap, sizeof *cand, pick_cmp);
        for (int i = 0; i < PICKS_PER_FEATURE && i < cand_cap; i++)
            v->picks[v->npicks++] = cand[i];
    }
    qsort(v->picks, (size_t)v->npicks, sizeof *v->picks, pick_cmp);
    free(f);
    free(x);
    free(cand);
    return EXIT_OK;
}

/* ---- writing the page's data ---------------------------------------------------------- */

/* A JSON string of code points, safe inside a <script> element. */
static void json_cps(FILE *f, const uint32_t *cp, int64_t n)
{
    fputc('"', f);
    for (int64_t i = 0; i < n; i++) {
        uint32_t c = cp[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x2028 || c == 0x2029) {
            fprintf(f, "\\u%04x", (unsigned)c);
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            fputs("\\ufffd", f);
        } else {
            char buf[4];
            int k = tg_utf8_encode(c, buf);
            fwrite(buf, 1, (size_t)k, f);
        }
    }
    fputc('"', f);
}

static void json_str(FILE *f, const char *s)
{
    size_t len = strlen(s);
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) {
        fputs("\"\"", f);
        return;
    }
    int64_t n = tg_utf8_decode((const unsigned char *)s, len, cp, NULL);
    json_cps(f, cp, n);
    free(cp);
}

/* Streams bytes as base64 (RFC 4648, with padding). */
typedef struct b64 {
    FILE *f;
    unsigned char in[3];
    int nin;
    char out[4096];
    int nout;
} b64;

static void b64_flush_out(b64 *b)
{
    fwrite(b->out, 1, (size_t)b->nout, b->f);
    b->nout = 0;
}

static void b64_group(b64 *b, int n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned v = (unsigned)b->in[0] << 16 | (unsigned)(n > 1 ? b->in[1] : 0) << 8 |
                 (unsigned)(n > 2 ? b->in[2] : 0);
    if (b->nout + 4 > (int)sizeof b->out)
        b64_flush_out(b);
    b->out[b->nout++] = abc[v >> 18 & 63];
    b->out[b->nout++] = abc[v >> 12 & 63];
    b->out[b->nout++] = n > 1 ? abc[v >> 6 & 63] : '=';
    b->out[b->nout++] = n > 2 ? abc[v & 63] : '=';
}

static void b64_put(b64 *b, unsigned char byte)
{
    b->in[b->nin++] = byte;
    if (b->nin == 3) {
        b64_group(b, 3);
        b->nin = 0;
    }
}

static void b64_end(b64 *b)
{
    if (b->nin)
        b64_group(b, b->nin);
    b->nin = 0;
    b64_flush_out(b);
}

static void put_u16(b64 *b, unsigned v)
{
    b64_put(b, (unsigned char)(v & 255));
    b64_put(b, (unsigned char)(v >> 8));
}

/* An array of n numbers with 3 decimals. */
static void json_fracs(FILE *f, const double *x, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.3f", i ? "," : "", x[i]);
    fputc(']', f);
}

static void write_quantity(FILE *f, const viz_run *v, int q)
{
    fprintf(f, "{\"name\":");
    json_str(f, v->qname[q]);
    fprintf(f, ",\"kind\":\"%s\"", qkind_names[v->qk[q]]);
    if (v->qk[q] == Q_FREE) {
        fputs(",\"scale\":[", f);
        for (int l = 0; l < v->L; l++) {
            fputs(l ? ",[" : "[", f);
            for (int u = 0; u < v->H; u++)
                fprintf(f, "%s%.5g", u ? "," : "",
                        (double)v->scale[((size_t)l * v->nq + q) * v->H + u]);
            fputc(']', f);
        }
        fputc(']', f);
    } else {
        /* saturation: fraction of characters below lo / above hi, per unit */
        double lo = v->qk[q] == Q_GATE ? 0.1 : -0.9, hi = 0.9;
        double *a = malloc((size_t)v->H * sizeof *a), *b = malloc((size_t)v->H * sizeof *b);
        if (a && b) {
            fprintf(f, ",\"thr\":[%g,%g],\"sat\":[", lo, hi);
            for (int l = 0; l < v->L; l++) {
                for (int u = 0; u < v->H; u++) {
                    int64_t below = 0, above = 0;
                    for (int64_t t = 0; t < v->n; t++) {
                        double x = tg_series_at(&v->series[l][q], t, u);
                        below += x < lo;
                        above += x > hi;
                    }
                    a[u] = (double)below / (double)v->n;
                    b[u] = (double)above / (double)v->n;
                }
                fputs(l ? ",{\"lo\":" : "{\"lo\":", f);
                json_fracs(f, a, v->H);
                fputs(",\"hi\":", f);
                json_fracs(f, b, v->H);
                fputc('}', f);
            }
            fputc(']', f);
        }
        free(a);
        free(b);
    }
    fputc('}', f);
}

static int write_data(FILE *f, void *user)
{
    const viz_run *v = user;
    const charlm_meta *mt = &v->meta;
    fputs("<script id=\"tg-meta\" type=\"application/json\">{\"title\":", f);
    json_str(f, v->title);
    fputs(",\"source\":", f);
    json_str(f, v->source ? v->source : "");
    fprintf(f, ",\"cell\":\"%s\",\"layers\":%d,\"hidden\":%d,\"steps\":%lld,",
            mt->cfg.cell->name, v->L, v->H, (long long)mt->step);
    if (mt->n_val > 0 && isfinite(mt->val_loss[mt->n_val - 1]))
        fprintf(f, "\"val_loss\":%.4f,\"val_step\":%lld,", mt->val_loss[mt->n_val - 1],
                (long long)mt->val_step[mt->n_val - 1]);
    else
        fputs("\"val_loss\":null,", f);
    fprintf(f, "\"n\":%lld,\"topk\":%d,\"vocab\":[", (long long)v->n, TOP_K);
    for (int i = 0; i < v->V; i++) {
        if (i)
            fputc(',', f);
        json_cps(f, &mt->vocab[i], 1);
    }
    fputs("],\"text\":", f);
    json_cps(f, v->cps, v->n);
    fputs(",\"q\":[", f);
    for (int q = 0; q < v->nq; q++) {
        if (q)
            fputc(',', f);
        write_quantity(f, v, q);
    }
    fputs("],\"features\":[", f);
    for (int k = 0; k < F_COUNT; k++) {
        if (k)
            fputc(',', f);
        json_str(f, feature_names[k]);
    }
    fputs("],\"top\":[", f);
    for (int i = 0; i < v->npicks; i++) {
        const pick *p = &v->picks[i];
        fprintf(f, "%s{\"f\":%d,\"layer\":%d,\"q\":%d,\"unit\":%d,\"r\":%.3f}", i ? "," : "",
                p->feature, p->layer, p->q, p->unit, p->r);
    }
    fputs("]}</script>\n", f);

    b64 b = { .f = f };
    for (int l = 0; l < v->L; l++)
        for (int q = 0; q < v->nq; q++) {
            fprintf(f, "<script id=\"tg-d-%d-%d\" type=\"application/octet-stream\">", l, q);
            for (int u = 0; u < v->H; u++)      /* unit-major: a unit's run is contiguous */
                for (int64_t t = 0; t < v->n; t++)
                    b64_put(&b, quantise(v, l, q, u, tg_series_at(&v->series[l][q], t, u)));
            b64_end(&b);
            fputs("</script>\n", f);
        }
    /* per character: TOP_K ids, TOP_K probabilities and p(actual next), uint16 LE */
    fputs("<script id=\"tg-p\" type=\"application/octet-stream\">", f);
    for (int64_t t = 0; t < v->n; t++) {
        for (int k = 0; k < TOP_K; k++)
            put_u16(&b, v->top_id[t * TOP_K + k]);
        for (int k = 0; k < TOP_K; k++)
            put_u16(&b, (unsigned)lround(v->top_p[t * TOP_K + k] * 65535.0));
        float pn = v->p_next[t];
        put_u16(&b, isnan(pn) ? 65535u : (unsigned)lround(fmin(pn, 0.99998) * 65535.0));
    }
    b64_end(&b);
    fputs("</script>\n", f);
    return 0;
}

/* ---- the command ---------------------------------------------------------------------- */

static void viz_free(viz_run *v)
{
    free(v->scale);
    tg_recorder_free(v->rec);
    free(v->p_next);
    free(v->top_p);
    free(v->top_id);
    free(v->ids);
    free(v->cps);
    tg_charlm_deinit(&v->m);
    tg_params_free(v->ps);
    if (v->meta.vocab)
        meta_free(&v->meta);
}

int cmd_viz(int argc, char **argv)
{
    set_error_prefix("viz");
    viz_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0)
        return EXIT_OK;
    if (rc != EXIT_OK)
        return rc;
    if (o.threads > 0)
        tg_set_num_threads(o.threads);
    viz_run *v = calloc(1, sizeof *v);
    if (!v) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    char err[600];
    rc = model_load(o.model, &v->meta, &v->ps, &v->m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        free(v);
        return rc;
    }
    v->L = v->m.rnn.layers;
    v->H = v->m.rnn.hidden_size;
    v->V = v->meta.V;
    const char *base = strrchr(o.model, '/');
    v->title = o.title ? o.title : base ? base + 1 : o.model;
    int64_t known = load_text(v, &o);
    rc = EXIT_RUNTIME;
    if (known < 0)
        goto out;
    if ((rc = run_model(v, known, &o)) != EXIT_OK || (rc = collect_quantities(v)) != EXIT_OK ||
        (rc = rank_units(v)) != EXIT_OK)
        goto out;

    FILE *f = fopen(o.out, "wb");
    if (!f) {
        errorf("cannot write %s: %s", o.out, strerror(errno));
        rc = EXIT_RUNTIME;
        goto out;
    }
    viz_page_write(f, write_data, v);
    bool bad = ferror(f) != 0;
    long size = ftell(f);
    if (fclose(f) != 0 || bad) {
        errorf("writing %s failed", o.out);
        rc = EXIT_RUNTIME;
        goto out;
    }
    char reg[128];
    printf("viz: %lld characters through %s %d x %d%s (step %lld); quantities:",
           (long long)v->n, v->meta.cfg.cell->name, v->L, v->H,
           model_regularisers(&v->meta.cfg, reg, sizeof reg), (long long)v->meta.step);
    for (int q = 0; q < v->nq; q++)
        printf(" %s", v->qname[q]);
    printf("\n");
    for (int i = 0; i < v->npicks && i < 8; i++) {
        const pick *p = &v->picks[i];
        printf("viz: layer %d unit %d (%s) follows %s: r = %+.3f\n", p->layer, p->unit,
               v->qname[p->q], feature_names[p->feature], p->r);
    }
    printf("viz: wrote %s (%.1f MB)\n", o.out, (double)size / 1e6);
    rc = EXIT_OK;
out:
    viz_free(v);
    free(v);
    return rc;
}
