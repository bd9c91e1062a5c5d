/* examples/charlm/meta.c: the checkpoint metadata (config, vocabulary, training state),
   encoded little-endian with a magic and a version, and validated field by field on read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"

/*
 * Layout (every integer little-endian; doubles and floats as their IEEE bit patterns):
 *   "CHARLMMD" u32 version
 *   config:  u32 n, n bytes: the cell type's name ([a-z0-9_], 1-63 bytes);
 *            u32 layers, hidden, embed; f64 dropout, var_dropout, zoneout,
 *            weight_drop; u32 init (0 torch, 1 uniform,
 *            2 xavier, 3 orthogonal: tg_init_kind); f64 init_scale;
 *            u32 forget_bias_one; u32 seq, batch, optim; f64 lr, clip, clip_value,
 *            lr_decay; u64 lr_decay_every; f64 val_frac; u64 seed
 *   data:    u64 bytes; u32 crc
 *   vocab:   u32 V (bit 31 set: a byte vocabulary); V x u32 symbol (strictly increasing)
 *   state:   u64 step, cursor; 4 x u64 rng; u32 layers, hidden, nstate; u64 batch;
 *            nstate x (layers*batch*hidden x f32): state tensor 0 (h), 1, ...
 *   history: u64 n_loss; n_loss x f32; u64 n_val; n_val x (u64 step, f64 loss)
 * and nothing after it.
 * Version 2 has no var_dropout, zoneout, weight_drop (read as 0). Version 1 also differs
 * in two fields: the cell is a u32 code (0 rnn, 1 lstm, 2 gru), and nstate is a flag
 * has_c (0: h only, 1: h and c). Both are still read.
 */
#define VOCAB_BYTES_FLAG 0x80000000u   /* in the vocabulary size: symbols are bytes */

static const char MAGIC[8] = {'C', 'H', 'A', 'R', 'L', 'M', 'M', 'D'};

typedef struct writer {
    unsigned char *buf;
    size_t n, cap;
    bool failed;
} writer;

static void put_bytes(writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n)
            cap *= 2;
        unsigned char *nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = true;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->n, p, n);
    w->n += n;
}

static void put_u64(writer *w, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, 8);
}

static void put_u32(writer *w, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, 4);
}

static void put_f64(writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(w, u);
}

static void put_f32(writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(w, u);
}

int meta_encode(const charlm_meta *m, unsigned char **buf, size_t *size)
{
    writer w = {0};
    const charlm_config *c = &m->cfg;
    put_bytes(&w, MAGIC, 8);
    put_u32(&w, META_VERSION);
    size_t name_len = strlen(c->cell->name);
    put_u32(&w, (uint32_t)name_len);
    put_bytes(&w, c->cell->name, name_len);
    put_u32(&w, (uint32_t)c->layers);
    put_u32(&w, (uint32_t)c->hidden);
    put_u32(&w, (uint32_t)c->embed);
    put_f64(&w, c->dropout);
    put_f64(&w, c->var_dropout);
    put_f64(&w, c->zoneout);
    put_f64(&w, c->weight_drop);
    put_u32(&w, (uint32_t)c->init);
    put_f64(&w, c->init_scale);
    put_u32(&w, c->forget_bias_one ? 1u : 0u);
    put_u32(&w, (uint32_t)c->seq);
    put_u32(&w, (uint32_t)c->batch);
    put_u32(&w, (uint32_t)c->optim);
    put_f64(&w, c->lr);
    put_f64(&w, c->clip);
    put_f64(&w, c->clip_value);
    put_f64(&w, c->lr_decay);
    put_u64(&w, (uint64_t)c->lr_decay_every);
    put_f64(&w, c->val_frac);
    put_u64(&w, c->seed);

    put_u64(&w, m->data_bytes);
    put_u32(&w, m->data_crc);

    put_u32(&w, (uint32_t)m->V | (m->vocab_kind == TG_VOCAB_BYTES ? VOCAB_BYTES_FLAG : 0u));
    for (int i = 0; i < m->V; i++)
        put_u32(&w, m->vocab[i]);

    put_u64(&w, (uint64_t)m->step);
    put_u64(&w, (uint64_t)m->cursor);
    for (int i = 0; i < 4; i++)
        put_u64(&w, m->rng.s[i]);
    put_u32(&w, (uint32_t)m->state_layers);
    put_u32(&w, (uint32_t)m->state_hidden);
    put_u32(&w, (uint32_t)m->state_n);
    put_u64(&w, (uint64_t)m->state_batch);
    int64_t ns = (int64_t)m->state_layers * m->state_batch * m->state_hidden;
    for (int k = 0; k < m->state_n; k++)
        for (int64_t i = 0; i < ns; i++)
            put_f32(&w, m->state[k][i]);

    put_u64(&w, (uint64_t)m->n_loss);
    for (int64_t i = 0; i < m->n_loss; i++)
        put_f32(&w, m->loss[i]);
    put_u64(&w, (uint64_t)m->n_val);
    for (int64_t i = 0; i < m->n_val; i++) {
        put_u64(&w, (uint64_t)m->val_step[i]);
        put_f64(&w, m->val_loss[i]);
    }
    if (w.failed) {
        free(w.buf);
        return EXIT_RUNTIME;
    }
    *buf = w.buf;
    *size = w.n;
    return EXIT_OK;
}

/* ---- reading ---------------------------------------------------------------------- */
typedef struct reader {
    const unsigned char *p;
    size_t n, off;
    char *err;
    size_t errsize;
    bool failed;
} reader;

static bool need(reader *r, size_t n, const char *what)
{
    if (r->failed)
        return false;
    if (r->n - r->off < n) {
        snprintf(r->err, r->errsize, "metadata truncated in %s (byte %zu of %zu)", what,
                 r->off, r->n);
        r->failed = true;
        return false;
    }
    return true;
}

static uint64_t get_u64(reader *r, const char *what)
{
    if (!need(r, 8, what))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += 8;
    return v;
}

static uint32_t get_u32(reader *r, const char *what)
{
    if (!need(r, 4, what))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += 4;
    return v;
}

static double get_f64(reader *r, const char *what)
{
    uint64_t u = get_u64(r, what);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static float get_f32(reader *r, const char *what)
{
    uint32_t u = get_u32(r, what);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Records "metadata: <what> is invalid (<value>)" once. */
static void bad(reader *r, const char *what, double value)
{
    if (r->failed)
        return;
    snprintf(r->err, r->errsize, "metadata: %s is invalid (%g)", what, value);
    r->failed = true;
}

static void check_int(reader *r, const char *what, uint64_t v, uint64_t lo, uint64_t hi)
{
    if (!r->failed && (v < lo || v > hi))
        bad(r, what, (double)v);
}

static void check_real(reader *r, const char *what, double v, double lo, double hi)
{
    if (!r->failed && !(v >= lo && v <= hi))
        bad(r, what, v);
}

/* The cell type's name (version 2 on) or code (version 1) into m->cfg.cell: the registered
   type, or an error naming an unregistered one and how to load it. */
static void get_cell(reader *r, charlm_meta *m, uint32_t version)
{
    char name[64] = "";
    uint32_t u = get_u32(r, "config");
    if (version == 1) {
        static const char *const v1_cells[3] = {"rnn", "lstm", "gru"};
        check_int(r, "cell", u, 0, 2);
        snprintf(name, sizeof name, "%s", v1_cells[u % 3]);
    } else {
        check_int(r, "cell type name length", u, 1, sizeof name - 1);
        if (need(r, u, "cell type name")) {
            memcpy(name, r->p + r->off, u);
            r->off += u;
        }
        for (uint32_t i = 0; !r->failed && i < u; i++)
            if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                  name[i] == '_'))
                bad(r, "cell type name byte", (double)(unsigned char)name[i]);
    }
    if (r->failed)
        return;
    m->cfg.cell = tg_cell_type_find(name);
    if (!m->cfg.cell) {
        snprintf(r->err, r->errsize, "the checkpoint's cell type \"%s\" is not registered: "
                 "load the plug-in that defines it with --plugin FILE.so", name);
        r->failed = true;
    }
}

/* The config section into m->cfg. */
static void get_config(reader *r, charlm_meta *m, uint32_t version)
{
    charlm_config *c = &m->cfg;
    get_cell(r, m, version);
    uint32_t u = get_u32(r, "config");
    check_int(r, "layers", u, 1, TG_MAX_LAYERS);
    c->layers = (int)u;
    u = get_u32(r, "config");
    check_int(r, "hidden", u, 1, 1u << 20);
    c->hidden = (int)u;
    u = get_u32(r, "config");
    check_int(r, "embed", u, 0, 1u << 20);
    c->embed = (int)u;
    c->dropout = get_f64(r, "config");
    check_real(r, "dropout", c->dropout, 0.0, 0.999999);
    if (version >= 3) {                 /* older files were trained without them: 0 */
        c->var_dropout = get_f64(r, "config");
        check_real(r, "var dropout", c->var_dropout, 0.0, 0.999999);
        c->zoneout = get_f64(r, "config");
        check_real(r, "zoneout", c->zoneout, 0.0, 0.999999);
        c->weight_drop = get_f64(r, "config");
        check_real(r, "weight drop", c->weight_drop, 0.0, 0.999999);
    }
    u = get_u32(r, "config");
    check_int(r, "init", u, 0, 3);
    c->init = (tg_init_kind)u;
    c->init_scale = get_f64(r, "config");
    check_real(r, "init scale", c->init_scale, 0.0, 1e6);
    u = get_u32(r, "config");
    check_int(r, "forget bias flag", u, 0, 1);
    c->forget_bias_one = u != 0;
    u = get_u32(r, "config");
    check_int(r, "seq", u, 1, 1u << 20);
    c->seq = (int)u;
    u = get_u32(r, "config");
    check_int(r, "batch", u, 1, 1u << 20);
    c->batch = (int)u;
    u = get_u32(r, "config");
    check_int(r, "optimizer", u, 0, 4);
    c->optim = (tg_optim_kind)u;
    c->lr = get_f64(r, "config");
    check_real(r, "lr", c->lr, 0.0, 1e6);
    c->clip = get_f64(r, "config");
    check_real(r, "clip", c->clip, 0.0, 1e300);
    c->clip_value = get_f64(r, "config");
    check_real(r, "clip value", c->clip_value, 0.0, 1e300);
    c->lr_decay = get_f64(r, "config");
    check_real(r, "lr decay", c->lr_decay, 0.0, 1.0);
    uint64_t u64 = get_u64(r, "config");
    check_int(r, "lr decay interval", u64, 0, INT64_MAX);
    c->lr_decay_every = (int64_t)u64;
    c->val_frac = get_f64(r, "config");
    check_real(r, "val frac", c->val_frac, 0.0, 0.999999);
    c->seed = get_u64(r, "config");
}

/* The vocabulary section into m->V, m->vocab. */
static void get_vocab(reader *r, charlm_meta *m)
{
    uint32_t u = get_u32(r, "vocabulary");
    m->vocab_kind = u & VOCAB_BYTES_FLAG ? TG_VOCAB_BYTES : TG_VOCAB_CHARS;
    u &= ~VOCAB_BYTES_FLAG;
    check_int(r, "vocabulary size", u, 1, 0x110000);
    if (!r->failed && (size_t)u > (r->n - r->off) / 4) {
        snprintf(r->err, r->errsize, "metadata truncated in vocabulary (%u entries announced)",
                 (unsigned)u);
        r->failed = true;
    }
    if (!r->failed) {
        m->V = (int)u;
        m->vocab = malloc((size_t)m->V * sizeof *m->vocab);
        if (!m->vocab) {
            snprintf(r->err, r->errsize, "out of memory reading the vocabulary");
            r->failed = true;
        }
        for (int i = 0; !r->failed && i < m->V; i++) {
            m->vocab[i] = get_u32(r, "vocabulary");
            if (m->vocab[i] > (m->vocab_kind == TG_VOCAB_BYTES ? 0xFFu : 0x10FFFFu) || (i > 0 && m->vocab[i] <= m->vocab[i - 1]))
                bad(r, "vocabulary entry", (double)m->vocab[i]);
        }
    }
}

/* The training state: step, cursor, RNG and the carried hidden state. */
static void get_state(reader *r, charlm_meta *m, uint32_t version)
{
    const charlm_config *c = &m->cfg;
    uint32_t u;
    uint64_t u64;
    u64 = get_u64(r, "training state");
    check_int(r, "step", u64, 0, INT64_MAX / 2);
    m->step = (int64_t)u64;
    u64 = get_u64(r, "training state");
    check_int(r, "data cursor", u64, 0, INT64_MAX / 2);
    m->cursor = (int64_t)u64;
    for (int i = 0; i < 4; i++)
        m->rng.s[i] = get_u64(r, "RNG state");
    u = get_u32(r, "hidden state");
    check_int(r, "hidden state layers", u, (uint64_t)c->layers, (uint64_t)c->layers);
    m->state_layers = (int)u;
    u = get_u32(r, "hidden state");
    check_int(r, "hidden state size", u, (uint64_t)c->hidden, (uint64_t)c->hidden);
    m->state_hidden = (int)u;
    u = get_u32(r, "hidden state");
    if (version == 1)              /* a flag has_c: 0 (h), 1 (h and c) */
        u += 1;
    int nstate = r->failed ? 1 : c->cell->nstate;
    check_int(r, "hidden state tensor count", u, (uint64_t)nstate, (uint64_t)nstate);
    m->state_n = (int)u;
    u64 = get_u64(r, "hidden state");
    check_int(r, "hidden state batch", u64, (uint64_t)c->batch, (uint64_t)c->batch);
    m->state_batch = (int64_t)u64;
    if (!r->failed) {
        size_t ns = (size_t)m->state_layers * (size_t)m->state_batch * (size_t)m->state_hidden;
        size_t bytes = ns * 4 * (size_t)m->state_n;
        if (bytes > r->n - r->off) {
            snprintf(r->err, r->errsize, "metadata truncated in hidden state (%zu bytes announced)",
                     bytes);
            r->failed = true;
        }
        for (int k = 0; !r->failed && k < m->state_n; k++) {
            m->state[k] = malloc(ns * sizeof(float));
            if (!m->state[k]) {
                snprintf(r->err, r->errsize, "out of memory reading the hidden state");
                r->failed = true;
            }
            for (size_t i = 0; !r->failed && i < ns; i++)
                m->state[k][i] = get_f32(r, "hidden state");
        }
    }
}

/* The loss and validation histories. */
static void get_history(reader *r, charlm_meta *m)
{
    uint64_t u64;
    u64 = get_u64(r, "loss history");
    check_int(r, "loss history length", u64, (uint64_t)m->step, (uint64_t)m->step);
    if (!r->failed && u64 > (r->n - r->off) / 4) {
        snprintf(r->err, r->errsize, "metadata truncated in loss history");
        r->failed = true;
    }
    if (!r->failed) {
        m->n_loss = (int64_t)u64;
        m->loss = malloc(((size_t)m->n_loss + 1) * sizeof *m->loss);
        if (!m->loss) {
            snprintf(r->err, r->errsize, "out of memory reading the loss history");
            r->failed = true;
        }
        for (int64_t i = 0; !r->failed && i < m->n_loss; i++)
            m->loss[i] = get_f32(r, "loss history");
    }
    u64 = get_u64(r, "validation history");
    if (!r->failed && u64 > (r->n - r->off) / 16) {
        snprintf(r->err, r->errsize, "metadata truncated in validation history");
        r->failed = true;
    }
    if (!r->failed) {
        m->n_val = (int64_t)u64;
        m->val_step = malloc(((size_t)m->n_val + 1) * sizeof *m->val_step);
        m->val_loss = malloc(((size_t)m->n_val + 1) * sizeof *m->val_loss);
        if (!m->val_step || !m->val_loss) {
            snprintf(r->err, r->errsize, "out of memory reading the validation history");
            r->failed = true;
        }
        for (int64_t i = 0; !r->failed && i < m->n_val; i++) {
            uint64_t s = get_u64(r, "validation history");
            check_int(r, "validation step", s, 1, (uint64_t)m->step);
            m->val_step[i] = (int64_t)s;
            m->val_loss[i] = get_f64(r, "validation history");
        }
    }
}

int meta_decode(const unsigned char *buf, size_t size, charlm_meta *m, char *err,
                size_t errsize)
{
    memset(m, 0, sizeof *m);
    reader r = {buf, size, 0, err, errsize, false};
    if (!buf || size < 12 || memcmp(buf, MAGIC, 8) != 0) {
        snprintf(err, errsize, "not a charlm checkpoint (its metadata has no charlm header)");
        return EXIT_RUNTIME;
    }
    r.off = 8;
    uint32_t version = get_u32(&r, "header");
    if (version < 1 || version > META_VERSION) {
        snprintf(err, errsize, "charlm metadata version %u is not supported (expected %u)",
                 (unsigned)version, META_VERSION);
        return EXIT_RUNTIME;
    }
    get_config(&r, m, version);
    m->data_bytes = get_u64(&r, "data fingerprint");
    m->data_crc = get_u32(&r, "data fingerprint");
    get_vocab(&r, m);
    get_state(&r, m, version);
    get_history(&r, m);
    if (!r.failed && r.off != r.n) {
        snprintf(err, errsize, "metadata has %zu unexpected trailing bytes", r.n - r.off);
        r.failed = true;
    }
    if (r.failed) {
        meta_free(m);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

void meta_free(charlm_meta *m)
{
    free(m->vocab);
    for (int k = 0; k < TG_MAX_CELL_STATE; k++)
        free(m->state[k]);
    free(m->loss);
    free(m->val_step);
    free(m->val_loss);
    memset(m, 0, sizeof *m);
}
