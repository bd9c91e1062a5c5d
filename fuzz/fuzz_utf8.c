/* fuzz/fuzz_utf8.c: libFuzzer target for the char-LM's UTF-8 decoder and corpus reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"
#include "tensor/tensor_internal.h"   /* tg_crc32 */
#include "fuzz/fuzz.h"

/*
 * The input is a text file. It is decoded in memory with tg_utf8_decode and checked against
 * an independent table-driven decoder written from the Unicode standard (Table 3-7,
 * well-formed byte sequences; one U+FFFD per maximal subpart), then read from a file with
 * corpus_load twice: building its own vocabulary, and mapped onto the vocabulary of the
 * first half of the text (which fails, with a message, when the second half has another
 * character). Everything corpus_load returns must agree with the decoding.
 */

#define FFFD 0xFFFDu

/* Table 3-7: lead byte range, sequence length, allowed range of the second byte. */
static const struct {
    unsigned char lo, hi, len, second_lo, second_hi;
} wellformed[] = {
    { 0x00, 0x7F, 1, 0, 0 },       { 0xC2, 0xDF, 2, 0x80, 0xBF },
    { 0xE0, 0xE0, 3, 0xA0, 0xBF }, { 0xE1, 0xEC, 3, 0x80, 0xBF },
    { 0xED, 0xED, 3, 0x80, 0x9F }, { 0xEE, 0xEF, 3, 0x80, 0xBF },
    { 0xF0, 0xF0, 4, 0x90, 0xBF }, { 0xF1, 0xF3, 4, 0x80, 0xBF },
    { 0xF4, 0xF4, 4, 0x80, 0x8F },
};

static int64_t ref_decode(const unsigned char *s, size_t n, uint32_t *out, int64_t *bad)
{
    static const unsigned char lead_mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    int64_t count = 0;
    *bad = 0;
    for (size_t i = 0; i < n;) {
        int row = -1;
        for (int r = 0; r < (int)(sizeof wellformed / sizeof wellformed[0]); r++)
            if (s[i] >= wellformed[r].lo && s[i] <= wellformed[r].hi)
                row = r;
        if (row < 0) {
            out[count++] = FFFD;
            ++*bad;
            i++;
            continue;
        }
        size_t len = wellformed[row].len, k = 1;
        for (; k < len && i + k < n; k++) {
            unsigned lo = k == 1 ? wellformed[row].second_lo : 0x80;
            unsigned hi = k == 1 ? wellformed[row].second_hi : 0xBF;
            if (s[i + k] < lo || s[i + k] > hi)
                break;
        }
        if (k < len) {               /* a maximal subpart of k bytes */
            out[count++] = FFFD;
            ++*bad;
            i += k;
            continue;
        }
        uint32_t cp = s[i] & lead_mask[len];
        for (size_t j = 1; j < len; j++)
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        out[count++] = cp;
        i += len;
    }
    return count;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Checks a loaded corpus against the reference decoding cps[0..count). */
static void check_corpus(const corpus *c, const unsigned char *data, size_t n,
                         const uint32_t *cps, int64_t count, int64_t bad)
{
    FUZZ_CHECK(c->n == count, "corpus n %lld, decoded %lld", (long long)c->n,
               (long long)count);
    FUZZ_CHECK(c->replaced == bad, "corpus replaced %lld, expected %lld",
               (long long)c->replaced, (long long)bad);
    FUZZ_CHECK(c->bytes == n, "corpus bytes %llu", (unsigned long long)c->bytes);
    FUZZ_CHECK(c->crc == tg_crc32(0, data, n), "corpus crc");
    FUZZ_CHECK(c->V >= 1 && c->vocab && c->ids, "corpus V %d", c->V);
    for (int v = 1; v < c->V; v++)
        FUZZ_CHECK(c->vocab[v - 1] < c->vocab[v], "vocab not increasing at %d", v);
    for (int64_t i = 0; i < c->n; i++) {
        FUZZ_CHECK(c->ids[i] >= 0 && c->ids[i] < c->V, "id %d out of range", c->ids[i]);
        FUZZ_CHECK(c->vocab[c->ids[i]] == cps[i], "token %lld is U+%04X, expected U+%04X",
                   (long long)i, (unsigned)c->vocab[c->ids[i]], (unsigned)cps[i]);
    }
}

static fuzz_file text;
static bool ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!ready) {
        fuzz_file_open(&text, "utf8");
        ready = true;
    }
    uint32_t *got = malloc((n + 1) * sizeof *got);
    uint32_t *want = malloc((n + 1) * sizeof *want);
    FUZZ_CHECK(got && want, "out of memory");

    /* the decoder against the reference */
    int64_t rep = -1, want_rep;
    int64_t count = tg_utf8_decode(data, n, got, &rep);
    int64_t want_count = ref_decode(data, n, want, &want_rep);
    FUZZ_CHECK(count == want_count && rep == want_rep,
               "decoded %lld code points (%lld replaced), reference %lld (%lld)",
               (long long)count, (long long)rep, (long long)want_count, (long long)want_rep);
    for (int64_t i = 0; i < count; i++)
        FUZZ_CHECK(got[i] == want[i], "code point %lld: U+%04X, reference U+%04X",
                   (long long)i, (unsigned)got[i], (unsigned)want[i]);
    FUZZ_CHECK(tg_utf8_decode(data, n, got, NULL) == count, "NULL replaced changes the count");

    /* every decoded code point is a scalar value, and encodes and decodes back to itself;
       valid text re-encodes to exactly its bytes */
    unsigned char *re = malloc(4 * (size_t)count + 1);
    FUZZ_CHECK(re != NULL, "out of memory");
    size_t relen = 0;
    for (int64_t i = 0; i < count; i++) {
        uint32_t cp = got[i];
        FUZZ_CHECK(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF), "U+%04X", (unsigned)cp);
        char buf[4];
        int k = tg_utf8_encode(cp, buf);
        FUZZ_CHECK(k >= 1 && k <= 4, "encode length %d", k);
        uint32_t back;
        int64_t r2;
        FUZZ_CHECK(tg_utf8_decode((const unsigned char *)buf, (size_t)k, &back, &r2) == 1
                       && back == cp && r2 == 0, "U+%04X does not round-trip", (unsigned)cp);
        memcpy(re + relen, buf, (size_t)k);
        relen += (size_t)k;
    }
    if (rep == 0)
        FUZZ_CHECK(relen == n && (n == 0 || memcmp(re, data, n) == 0),
                   "valid UTF-8 does not re-encode to itself");
    free(re);

    /* corpus_load, building the vocabulary */
    fuzz_file_set(&text, data, n);
    corpus c;
    char err[512];
    int rc = corpus_load(text.path, NULL, 0, &c, err, sizeof err);
    if (n == 0) {
        FUZZ_CHECK(rc == EXIT_RUNTIME && fuzz_one_line(err), "empty file: rc %d '%s'", rc,
                   err);
    } else {
        FUZZ_CHECK(rc == EXIT_OK, "corpus_load failed: %s", err);
        check_corpus(&c, data, n, want, count, want_rep);
        /* the vocabulary is exactly the set of code points */
        uint32_t *sorted = malloc((size_t)count * sizeof *sorted);
        FUZZ_CHECK(sorted != NULL, "out of memory");
        memcpy(sorted, want, (size_t)count * sizeof *sorted);
        qsort(sorted, (size_t)count, sizeof *sorted, cmp_u32);
        int distinct = 0;
        for (int64_t i = 0; i < count; i++)
            if (i == 0 || sorted[i] != sorted[i - 1])
                sorted[distinct++] = sorted[i];
        FUZZ_CHECK(distinct == c.V && memcmp(sorted, c.vocab, (size_t)c.V * 4) == 0,
                   "vocabulary of %d, expected %d distinct code points", c.V, distinct);
        free(sorted);
        corpus_free(&c);
    }

    /* corpus_load onto the vocabulary of the first half */
    int64_t half = count / 2;
    if (half > 0) {
        uint32_t *voc = malloc((size_t)half * sizeof *voc);
        FUZZ_CHECK(voc != NULL, "out of memory");
        memcpy(voc, want, (size_t)half * sizeof *voc);
        qsort(voc, (size_t)half, sizeof *voc, cmp_u32);
        int V = 0;
        for (int64_t i = 0; i < half; i++)
            if (i == 0 || voc[i] != voc[V - 1])
                voc[V++] = voc[i];
        int64_t first_missing = -1;
        for (int64_t i = 0; i < count && first_missing < 0; i++)
            if (!bsearch(&want[i], voc, (size_t)V, sizeof *voc, cmp_u32))
                first_missing = i;
        rc = corpus_load(text.path, voc, V, &c, err, sizeof err);
        if (first_missing < 0) {
            FUZZ_CHECK(rc == EXIT_OK, "corpus_load onto a covering vocabulary: %s", err);
            FUZZ_CHECK(c.V == V && memcmp(c.vocab, voc, (size_t)V * 4) == 0, "vocab copy");
            check_corpus(&c, data, n, want, count, want_rep);
            corpus_free(&c);
        } else {
            FUZZ_CHECK(rc == EXIT_RUNTIME, "character %lld is not in the vocabulary, rc %d",
                       (long long)first_missing, rc);
            FUZZ_CHECK(fuzz_one_line(err), "message '%s'", err);
            char pos[32];
            snprintf(pos, sizeof pos, "position %lld", (long long)first_missing);
            FUZZ_CHECK(strstr(err, pos) != NULL, "'%s' does not name %s", err, pos);
        }
        free(voc);
    }
    free(got);
    free(want);
    return 0;
}
