/* examples/charlm/data.c: charlm's corpus: a file read with its fingerprint, mapped onto a
   vocabulary with the library's text module (nn/text.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"
#include "tensor/tensor_internal.h"   /* tg_crc32 */

int vocab_find(const uint32_t *vocab, int V, uint32_t cp)
{
    const tg_vocab v = {TG_VOCAB_CHARS, V, (uint32_t *)vocab};   /* read only */
    return tg_vocab_find(&v, cp);
}

/* Reads a whole file into a malloc'ed buffer; the message in err is the library's
   without its function name ("cannot open 'x': No such file or directory"). */
static int read_file(const char *path, unsigned char **data, size_t *size, char *err,
                     size_t errsize)
{
    if (tg_text_read_file(path, data, size) == TG_OK)
        return EXIT_OK;
    const char *msg = tg_last_error(), *colon = strstr(msg, ": ");
    snprintf(err, errsize, "%s", colon ? colon + 2 : msg);
    return EXIT_RUNTIME;
}

/* The message for an unknown symbol (the wording charlm has always used). */
static void unknown_message(const char *path, const tg_text *t, int64_t pos, char *err,
                            size_t errsize)
{
    char d[32];
    snprintf(err, errsize, "'%s': %s %s at position %lld is not in the model's vocabulary",
             path, t->kind == TG_VOCAB_BYTES ? "symbol" : "character",
             tg_vocab_describe(t->kind, t->symbols[pos], d), (long long)pos);
}

/* c's vocabulary: the given one, or the text's own (every byte for a byte text). */
static tg_status corpus_vocab(const tg_text *t, const uint32_t *vocab, int V, tg_vocab *v)
{
    if (vocab)
        return tg_vocab_init(v, t->kind, vocab, V);
    return tg_vocab_build(v, t);
}

int corpus_load_as(const char *path, tg_vocab_kind kind, const uint32_t *vocab, int V,
                   tg_unknown unknown, corpus *c, char *err, size_t errsize)
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
    tg_text t;
    tg_vocab v = {0};
    tg_status st = tg_text_from_memory(&t, bytes, nbytes, kind);
    c->bytes = nbytes;
    c->crc = tg_crc32(0, bytes, nbytes);
    free(bytes);
    c->kind = kind;
    c->replaced = t.replaced;
    if (st == TG_OK)
        st = corpus_vocab(&t, vocab, V, &v);
    if (st == TG_OK && !(c->ids = malloc(((size_t)t.n + 1) * sizeof *c->ids)))
        st = TG_ERR_NOMEM;
    if (st == TG_OK)
        st = tg_vocab_encode(&v, &t, unknown, c->ids, &c->n, &c->skipped);
    if (st != TG_OK) {
        if (st == TG_ERR_NOMEM)
            snprintf(err, errsize, "'%s': out of memory", path);
        else if (c->ids && c->n < t.n)
            unknown_message(path, &t, c->n, err, errsize);
        else
            snprintf(err, errsize, "'%s': %s", path, tg_last_error());
        tg_text_free(&t);
        tg_vocab_free(&v);
        corpus_free(c);
        return EXIT_RUNTIME;
    }
    tg_text_free(&t);
    c->vocab = v.symbols;   /* c owns it now */
    c->V = v.size;
    return EXIT_OK;
}

int corpus_load(const char *path, const uint32_t *vocab, int V, corpus *c, char *err,
                size_t errsize)
{
    return corpus_load_as(path, TG_VOCAB_CHARS, vocab, V, TG_UNKNOWN_REFUSE, c, err, errsize);
}

void corpus_free(corpus *c)
{
    free(c->vocab);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

int64_t corpus_val_count(int64_t n, double val_frac)
{
    return tg_text_val_count(n, val_frac);
}
