/* examples/charlm/data.c: UTF-8 decoding, the code-point vocabulary, char-rnn batches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"

#define REPLACEMENT 0xFFFDu
#define MAX_CODE_POINT 0x10FFFFu

/* Decoding follows the Unicode "maximal subpart" practice (as WHATWG's decoder does):
   a lead byte announces 1..3 continuation bytes, the first of which has a narrowed range
   (no overlongs, no surrogates, nothing above U+10FFFF). An invalid or cut-short sequence
   becomes one U+FFFD and decoding restarts at the first byte that did not fit. */
int64_t utf8_decode(const unsigned char *s, size_t n, uint32_t *out, int64_t *replaced)
{
    int64_t count = 0, bad = 0;
    size_t i = 0;
    while (i < n) {
        unsigned b = s[i];
        if (b < 0x80) {
            out[count++] = b;
            i++;
            continue;
        }
        int need;
        uint32_t cp;
        unsigned lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            cp = b & 0x0F;
            if (b == 0xE0)
                lo = 0xA0;
            if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            cp = b & 0x07;
            if (b == 0xF0)
                lo = 0x90;
            if (b == 0xF4)
                hi = 0x8F;
        } else {
            out[count++] = REPLACEMENT; /* stray continuation, C0, C1, F5..FF */
            bad++;
            i++;
            continue;
        }
        size_t j = i + 1;
        int got = 0;
        while (got < need && j < n) {
            unsigned c = s[j];
            if (c < lo || c > hi)
                break;
            cp = (cp << 6) | (c & 0x3F);
            lo = 0x80;
            hi = 0xBF;
            got++;
            j++;
        }
        if (got == need) {
            out[count++] = cp;
        } else {
            out[count++] = REPLACEMENT;
            bad++;
        }
        i = j;
    }
    if (replaced)
        *replaced = bad;
    return count;
}

int utf8_encode(uint32_t cp, char *buf)
{
    if (cp > MAX_CODE_POINT || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = REPLACEMENT;
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int vocab_find(const uint32_t *vocab, int V, uint32_t cp)
{
    int lo = 0, hi = V - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (vocab[mid] == cp)
            return mid;
        if (vocab[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

const char *cp_describe(uint32_t cp, char *buf)
{
    if (cp == '\n')
        snprintf(buf, 32, "'\\n' (U+000A)");
    else if (cp == '\t')
        snprintf(buf, 32, "'\\t' (U+0009)");
    else if (cp < 0x20 || cp == 0x7F)
        snprintf(buf, 32, "U+%04X", (unsigned)cp);
    else {
        char u[5] = {0};
        u[utf8_encode(cp, u)] = '\0';
        snprintf(buf, 32, "'%s' (U+%04X)", u, (unsigned)cp);
    }
    return buf;
}

/* Reads a whole file into a malloc'ed buffer. */
static int read_file(const char *path, unsigned char **data, size_t *size, char *err,
                     size_t errsize)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsize, "cannot open '%s': %s", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (!buf) {
        snprintf(err, errsize, "'%s': out of memory", path);
        return EXIT_RUNTIME;
    }
    if (failed) {
        free(buf);
        snprintf(err, errsize, "cannot read '%s': %s", path, strerror(saved));
        return EXIT_RUNTIME;
    }
    *data = buf;
    *size = n;
    return EXIT_OK;
}

int corpus_load(const char *path, const uint32_t *vocab, int V, corpus *c, char *err,
                size_t errsize)
{
    memset(c, 0, sizeof *c);
    unsigned char *bytes;
    size_t nbytes;
    int rc = read_file(path, &bytes, &nbytes, err, errsize);
    if (rc != EXIT_OK)
        return rc;
    if (nbytes == 0) {
        free(bytes);
        snprintf(err, errsize, "'%s' is empty", path);
        return EXIT_RUNTIME;
    }
    uint32_t *cps = malloc((nbytes + 1) * sizeof *cps);
    c->ids = malloc((nbytes + 1) * sizeof *c->ids);
    if (!cps || !c->ids) {
        free(bytes);
        free(cps);
        corpus_free(c);
        snprintf(err, errsize, "'%s': out of memory", path);
        return EXIT_RUNTIME;
    }
    c->n = utf8_decode(bytes, nbytes, cps, &c->replaced);
    c->bytes = nbytes;
    c->crc = tg_crc32(0, bytes, nbytes);
    free(bytes);

    if (!vocab) {
        /* the sorted set of code points, through a bitmap of every possible one */
        size_t words = (MAX_CODE_POINT + 1) / 64 + 1;
        uint64_t *seen = calloc(words, sizeof *seen);
        if (!seen) {
            free(cps);
            corpus_free(c);
            snprintf(err, errsize, "'%s': out of memory", path);
            return EXIT_RUNTIME;
        }
        int64_t distinct = 0;
        for (int64_t i = 0; i < c->n; i++) {
            uint64_t bit = (uint64_t)1 << (cps[i] % 64);
            if (!(seen[cps[i] / 64] & bit)) {
                seen[cps[i] / 64] |= bit;
                distinct++;
            }
        }
        c->vocab = malloc((size_t)distinct * sizeof *c->vocab);
        if (!c->vocab) {
            free(seen);
            free(cps);
            corpus_free(c);
            snprintf(err, errsize, "'%s': out of memory", path);
            return EXIT_RUNTIME;
        }
        int k = 0;
        for (size_t w = 0; w < words; w++) {   /* skip empty words: 17k tests, not 1.1M */
            if (!seen[w])
                continue;
            for (unsigned b = 0; b < 64; b++)
                if (seen[w] & ((uint64_t)1 << b))
                    c->vocab[k++] = (uint32_t)(w * 64 + b);
        }
        c->V = k;
        free(seen);
    } else {
        c->vocab = malloc((size_t)V * sizeof *c->vocab);
        if (!c->vocab) {
            free(cps);
            corpus_free(c);
            snprintf(err, errsize, "'%s': out of memory", path);
            return EXIT_RUNTIME;
        }
        memcpy(c->vocab, vocab, (size_t)V * sizeof *vocab);
        c->V = V;
    }
    for (int64_t i = 0; i < c->n; i++) {
        int id = vocab_find(c->vocab, c->V, cps[i]);
        if (id < 0) {
            char d[32];
            snprintf(err, errsize,
                     "'%s': character %s at position %lld is not in the model's vocabulary",
                     path, cp_describe(cps[i], d), (long long)i);
            free(cps);
            corpus_free(c);
            return EXIT_RUNTIME;
        }
        c->ids[i] = id;
    }
    free(cps);
    return EXIT_OK;
}

void corpus_free(corpus *c)
{
    free(c->vocab);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

int64_t corpus_val_count(int64_t n, double val_frac)
{
    int64_t v = (int64_t)((double)n * val_frac);
    if (v < 0)
        v = 0;
    if (v > n)
        v = n;
    return v;
}

bool batcher_init(batcher *bt, const int32_t *ids, int64_t ntrain, int64_t B, int64_t T)
{
    memset(bt, 0, sizeof *bt);
    if (B < 1 || T < 1 || ntrain < 2)
        return false;
    bt->ids = ids;
    bt->B = B;
    bt->T = T;
    bt->L = ntrain / B;                   /* stream b is ids[b*L, b*L + L)     */
    if (bt->L < T + 1)
        return false;
    bt->windows = (bt->L - 1) / T;         /* the last target stays in the stream */
    return true;
}

void batcher_fill(const batcher *bt, int64_t w, int32_t *inputs, int32_t *targets)
{
    for (int64_t b = 0; b < bt->B; b++) {
        const int32_t *src = bt->ids + b * bt->L + w * bt->T;
        memcpy(inputs + b * bt->T, src, (size_t)bt->T * sizeof *src);
        memcpy(targets + b * bt->T, src + 1, (size_t)bt->T * sizeof *src);
    }
}
