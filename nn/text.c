/* nn/text.c: UTF-8 and byte texts, vocabularies, id encoding with an unknown-symbol
   policy, and char-rnn's contiguous-stream batches with the truncated-BPTT carry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/text.h"
#include "tensor/tensor_internal.h"

/* ---- UTF-8 --------------------------------------------------------------------------
 * A lead byte announces 1..3 continuation bytes, the first of which has a narrowed range
 * (no overlongs, no surrogates, nothing above U+10FFFF); WHATWG's decoder works the same.
 */
/* The sequence starting at s[0] (n >= 1 bytes left): its code point into *cp (U+FFFD when
   invalid, *bad set) and its length in bytes. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp, bool *bad)
{
    unsigned b = s[0];
    *bad = false;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        v = b & 0x0F;
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        v = b & 0x07;
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
        *cp = TG_TEXT_REPLACEMENT;   /* stray continuation, C0, C1, F5..FF */
        *bad = true;
        return 1;
    }
    size_t j = 1;
    int got = 0;
    while (got < need && j < n && s[j] >= lo && s[j] <= hi) {
        v = (v << 6) | (s[j] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
        got++;
        j++;
    }
    *bad = got != need;
    *cp = *bad ? TG_TEXT_REPLACEMENT : v;
    return j;
}

int64_t tg_utf8_decode(const unsigned char *s, size_t n, uint32_t *out, int64_t *replaced)
{
    int64_t count = 0, bad_count = 0;
    for (size_t i = 0; i < n;) {
        bool bad;
        i += utf8_next(s + i, n - i, &out[count++], &bad);
        bad_count += bad;
    }
    if (replaced)
        *replaced = bad_count;
    return count;
}

int tg_utf8_encode(uint32_t cp, char *buf)
{
    if (cp > TG_TEXT_MAX_CODE_POINT || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = TG_TEXT_REPLACEMENT;
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

/* ---- text ---------------------------------------------------------------------------- */
tg_status tg_text_from_memory(tg_text *t, const void *data, size_t size, tg_vocab_kind kind)
{
    if (!t || (!data && size > 0))
        return tg_error_set(TG_ERR_NULL, "text_from_memory: NULL %s", !t ? "text" : "data");
    memset(t, 0, sizeof *t);
    if (kind != TG_VOCAB_CHARS && kind != TG_VOCAB_BYTES)
        return tg_error_set(TG_ERR_ARG, "text_from_memory: unknown vocabulary kind %d",
                            (int)kind);
    if (size > (size_t)INT64_MAX / sizeof *t->symbols - 1)
        return tg_error_set(TG_ERR_NOMEM, "text_from_memory: %zu bytes is too large", size);
    t->kind = kind;
    t->symbols = malloc((size + 1) * sizeof *t->symbols);
    if (!t->symbols)
        return tg_error_set(TG_ERR_NOMEM, "text_from_memory: out of memory for %zu symbols",
                            size);
    const unsigned char *bytes = data;
    if (kind == TG_VOCAB_CHARS) {
        t->n = tg_utf8_decode(bytes, size, t->symbols, &t->replaced);
    } else {
        for (size_t i = 0; i < size; i++)
            t->symbols[i] = bytes[i];
        t->n = (int64_t)size;
    }
    t->bytes = size;
    return TG_OK;
}

tg_status tg_text_read_file(const char *path, unsigned char **data, size_t *size)
{
    if (!path || !data || !size)
        return tg_error_set(TG_ERR_NULL, "text_read_file: NULL argument");
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_error_set(TG_ERR_IO, "text_read_file: cannot open '%s': %s", path,
                            strerror(errno));
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
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (!buf)
        return tg_error_set(TG_ERR_NOMEM, "text_read_file: '%s': out of memory", path);
    if (failed) {
        free(buf);
        return tg_error_set(TG_ERR_IO, "text_read_file: cannot read '%s': %s", path,
                            strerror(saved));
    }
    *data = buf;
    *size = n;
    return TG_OK;
}

tg_status tg_text_read(tg_text *t, const char *path, tg_vocab_kind kind)
{
    if (!t || !path)
        return tg_error_set(TG_ERR_NULL, "text_read: NULL %s", !t ? "text" : "path");
    memset(t, 0, sizeof *t);
    unsigned char *buf;
    size_t n;
    tg_status st = tg_text_read_file(path, &buf, &n);
    if (st != TG_OK)
        return st;
    if (n == 0)
        st = tg_error_set(TG_ERR_ARG, "text_read: '%s' is empty", path);
    else
        st = tg_text_from_memory(t, buf, n, kind);
    free(buf);
    return st;
}

void tg_text_free(tg_text *t)
{
    if (!t)
        return;
    free(t->symbols);
    memset(t, 0, sizeof *t);
}

int64_t tg_text_val_count(int64_t n, double frac)
{
    int64_t v = (int64_t)((double)n * frac);
    return v < 0 ? 0 : v > n ? n : v;
}

/* ---- vocabulary ------------------------------------------------------------------------ */
static uint32_t max_symbol(tg_vocab_kind kind)
{
    return kind == TG_VOCAB_BYTES ? 255u : TG_TEXT_MAX_CODE_POINT;
}

/* The sorted distinct symbols of a, plus those of t (either may be NULL), into v: a
   bitmap over every possible symbol, read back in order. */
static tg_status vocab_union(tg_vocab *v, tg_vocab_kind kind, const tg_vocab *a,
                             const tg_text *t, const char *who)
{
    memset(v, 0, sizeof *v);
    size_t words = max_symbol(kind) / 64 + 1;
    uint64_t *seen = calloc(words, sizeof *seen);
    if (!seen)
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory", who);
    int64_t distinct = 0;
    for (int64_t i = 0; i < (a ? a->size : 0) + (t ? t->n : 0); i++) {
        uint32_t s = a && i < a->size ? a->symbols[i] : t->symbols[i - (a ? a->size : 0)];
        uint64_t bit = (uint64_t)1 << (s % 64);
        if (s <= max_symbol(kind) && !(seen[s / 64] & bit)) {
            seen[s / 64] |= bit;
            distinct++;
        }
    }
    v->symbols = malloc((size_t)(distinct ? distinct : 1) * sizeof *v->symbols);
    if (!v->symbols) {
        free(seen);
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory", who);
    }
    for (size_t w = 0; w < words; w++)   /* empty words skipped: 17k tests, not 1.1M */
        for (unsigned b = 0; seen[w] && b < 64; b++)
            if (seen[w] & ((uint64_t)1 << b))
                v->symbols[v->size++] = (uint32_t)(w * 64 + b);
    v->kind = kind;
    free(seen);
    return TG_OK;
}

tg_status tg_vocab_build(tg_vocab *v, const tg_text *t)
{
    if (!v || !t)
        return tg_error_set(TG_ERR_NULL, "vocab_build: NULL %s", !v ? "vocabulary" : "text");
    memset(v, 0, sizeof *v);
    if (t->kind == TG_VOCAB_BYTES) {
        v->symbols = malloc(256 * sizeof *v->symbols);
        if (!v->symbols)
            return tg_error_set(TG_ERR_NOMEM, "vocab_build: out of memory");
        for (int i = 0; i < 256; i++)
            v->symbols[i] = (uint32_t)i;
        v->size = 256;
        v->kind = TG_VOCAB_BYTES;
        return TG_OK;
    }
    if (t->n < 1)
        return tg_error_set(TG_ERR_ARG, "vocab_build: the text is empty");
    return vocab_union(v, TG_VOCAB_CHARS, NULL, t, "vocab_build");
}

tg_status tg_vocab_init(tg_vocab *v, tg_vocab_kind kind, const uint32_t *symbols, int size)
{
    if (!v || !symbols)
        return tg_error_set(TG_ERR_NULL, "vocab_init: NULL %s", !v ? "vocabulary" : "symbols");
    memset(v, 0, sizeof *v);
    if (kind != TG_VOCAB_CHARS && kind != TG_VOCAB_BYTES)
        return tg_error_set(TG_ERR_ARG, "vocab_init: unknown vocabulary kind %d", (int)kind);
    if (size < 1)
        return tg_error_set(TG_ERR_ARG, "vocab_init: size %d (must be >= 1)", size);
    for (int i = 0; i < size; i++)
        if (symbols[i] > max_symbol(kind) || (i > 0 && symbols[i] <= symbols[i - 1]))
            return tg_error_set(TG_ERR_ARG, "vocab_init: symbol %d (%u) is out of range or "
                                "not above the one before", i, (unsigned)symbols[i]);
    v->symbols = malloc((size_t)size * sizeof *v->symbols);
    if (!v->symbols)
        return tg_error_set(TG_ERR_NOMEM, "vocab_init: out of memory");
    memcpy(v->symbols, symbols, (size_t)size * sizeof *symbols);
    v->size = size;
    v->kind = kind;
    return TG_OK;
}

tg_status tg_vocab_merge(const tg_vocab *old, const tg_text *t, tg_vocab *merged,
                         int32_t *old_to_new)
{
    if (!old || !t || !merged || !old_to_new)
        return tg_error_set(TG_ERR_NULL, "vocab_merge: NULL argument");
    if (old->kind != t->kind)
        return tg_error_set(TG_ERR_ARG, "vocab_merge: a %s vocabulary and a text of %s",
                            old->kind == TG_VOCAB_BYTES ? "byte" : "character",
                            t->kind == TG_VOCAB_BYTES ? "bytes" : "characters");
    tg_status st = vocab_union(merged, old->kind, old, t, "vocab_merge");
    if (st != TG_OK)
        return st;
    for (int i = 0; i < old->size; i++)
        old_to_new[i] = tg_vocab_find(merged, old->symbols[i]);
    return TG_OK;
}

void tg_vocab_free(tg_vocab *v)
{
    if (!v)
        return;
    free(v->symbols);
    memset(v, 0, sizeof *v);
}

int tg_vocab_find(const tg_vocab *v, uint32_t symbol)
{
    int lo = 0, hi = v ? v->size - 1 : -1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->symbols[mid] == symbol)
            return mid;
        if (v->symbols[mid] < symbol)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int tg_vocab_bytes(const tg_vocab *v, int id, char *buf)
{
    if (!v || id < 0 || id >= v->size)
        return 0;
    if (v->kind == TG_VOCAB_BYTES) {
        buf[0] = (char)(unsigned char)v->symbols[id];
        return 1;
    }
    return tg_utf8_encode(v->symbols[id], buf);
}

const char *tg_vocab_describe(tg_vocab_kind kind, uint32_t symbol, char *buf)
{
    if (kind == TG_VOCAB_BYTES) {
        if (symbol >= 0x20 && symbol < 0x7F)
            snprintf(buf, 32, "byte 0x%02X '%c'", (unsigned)symbol, (char)symbol);
        else
            snprintf(buf, 32, "byte 0x%02X", (unsigned)(symbol & 0xFF));
    } else if (symbol == '\n') {
        snprintf(buf, 32, "'\\n' (U+000A)");
    } else if (symbol == '\t') {
        snprintf(buf, 32, "'\\t' (U+0009)");
    } else if (symbol < 0x20 || symbol == 0x7F) {
        snprintf(buf, 32, "U+%04X", (unsigned)symbol);
    } else {
        char u[5] = {0};
        u[tg_utf8_encode(symbol, u)] = '\0';
        snprintf(buf, 32, "'%s' (U+%04X)", u, (unsigned)symbol);
    }
    return buf;
}

tg_status tg_vocab_encode(const tg_vocab *v, const tg_text *t, tg_unknown unknown,
                          int32_t *ids, int64_t *n_ids, int64_t *skipped)
{
    if (!v || !t || !ids || !n_ids)
        return tg_error_set(TG_ERR_NULL, "vocab_encode: NULL argument");
    if (v->kind != t->kind)
        return tg_error_set(TG_ERR_ARG, "vocab_encode: a %s vocabulary and a text of %s",
                            v->kind == TG_VOCAB_BYTES ? "byte" : "character",
                            t->kind == TG_VOCAB_BYTES ? "bytes" : "characters");
    int64_t n = 0, left_out = 0;
    for (int64_t i = 0; i < t->n; i++) {
        int id = tg_vocab_find(v, t->symbols[i]);
        if (id >= 0) {
            ids[n++] = id;
        } else if (unknown == TG_UNKNOWN_SKIP) {
            left_out++;
        } else {
            char d[32];
            *n_ids = i;
            return tg_error_set(TG_ERR_ARG, "vocab_encode: %s at position %lld is not in the "
                                "vocabulary", tg_vocab_describe(t->kind, t->symbols[i], d),
                                (long long)i);
        }
    }
    *n_ids = n;
    if (skipped)
        *skipped = left_out;
    return TG_OK;
}

/* ---- batches -------------------------------------------------------------------------- */
tg_status tg_batcher_init(tg_batcher *bt, const int32_t *ids, int64_t n, int64_t B,
                          int64_t T)
{
    if (!bt || !ids)
        return tg_error_set(TG_ERR_NULL, "batcher_init: NULL %s", !bt ? "batcher" : "ids");
    memset(bt, 0, sizeof *bt);
    if (B < 1 || T < 1 || T > INT64_MAX / 2 / B)
        return tg_error_set(TG_ERR_ARG, "batcher_init: B = %lld, T = %lld (both must be "
                            ">= 1)", (long long)B, (long long)T);
    if (n < 2 || n / B < T + 1)
        return tg_error_set(TG_ERR_ARG, "batcher_init: %lld ids cannot fill %lld streams of "
                            "%lld + 1 (need at least %lld)", (long long)n, (long long)B,
                            (long long)T, (long long)(B * (T + 1)));
    bt->ids = ids;
    bt->B = B;
    bt->T = T;
    bt->L = n / B;                        /* stream b is ids[b*L, b*L + L)         */
    bt->windows = (bt->L - 1) / T;        /* the last target stays in the stream   */
    return TG_OK;
}

void tg_batcher_fill(const tg_batcher *bt, int32_t *inputs, int32_t *targets)
{
    for (int64_t b = 0; b < bt->B; b++) {
        const int32_t *src = bt->ids + b * bt->L + bt->cursor * bt->T;
        memcpy(inputs + b * bt->T, src, (size_t)bt->T * sizeof *src);
        memcpy(targets + b * bt->T, src + 1, (size_t)bt->T * sizeof *src);
    }
}

bool tg_batcher_advance(tg_batcher *bt, tg_stack_state *carry)
{
    if (++bt->cursor < bt->windows)
        return false;
    bt->cursor = 0;                       /* a new epoch: the streams restart */
    if (carry)
        tg_stack_state_zero(carry);
    return true;
}
