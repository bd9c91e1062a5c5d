/* nn/recorder.c: a tape observer that records every named result, per layer and name. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: L layers; a report is one tensor passed to tg_name (B,H for a cell's gate). */

#define MAX_SERIES 256   /* (layer, name) pairs one recorder keeps */
#define MAX_NAME   63

typedef struct series {
    char name[MAX_NAME + 1];
    int layer;
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];  /* of one report                               */
    int64_t width;               /* elements per report                          */
    int64_t rows, cap;           /* reports recorded / room for                  */
    unsigned char *data;         /* rows x width values of dtype                 */
    int64_t last_group;          /* group of the latest report (-1: none yet)    */
} series;

struct tg_recorder {
    int layers;
    int64_t group;               /* current group; layer = group % layers        */
    tg_status status;            /* first error; recording stops after it        */
    char msg[160];               /* its reason                                   */
    int count;
    series s[MAX_SERIES];
};

tg_recorder *tg_recorder_new(int layers)
{
    if (layers < 1 || layers > TG_MAX_LAYERS) {
        tg_error_set(TG_ERR_ARG, "recorder_new: %d layers (must be 1..%d)", layers,
                     TG_MAX_LAYERS);
        return NULL;
    }
    tg_recorder *r = calloc(1, sizeof *r);
    if (!r) {
        tg_error_set(TG_ERR_NOMEM, "recorder_new: out of memory");
        return NULL;
    }
    r->layers = layers;
    return r;
}

void tg_recorder_free(tg_recorder *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->count; i++)
        free(r->s[i].data);
    free(r);
}

void tg_recorder_clear(tg_recorder *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->count; i++) {
        r->s[i].rows = 0;
        r->s[i].last_group = -1;
    }
    r->group = 0;
    r->status = TG_OK;
    r->msg[0] = '\0';
}

void tg_recorder_attach(tg_recorder *r, tg_tape *tape)
{
    tg_tape_set_observer(tape, r ? tg_recorder_observe : NULL, r);
}

/* Records r's first error and its reason (also the calling thread's, tg_last_error);
   recording stops until tg_recorder_clear. */
static void stop(tg_recorder *r, tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stop(tg_recorder *r, tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->status = status;
    tg_error_set(status, "recorder: %s", r->msg);
}

/* Index of the series (layer, name), or -1. */
static int find(const tg_recorder *r, int layer, const char *name)
{
    for (int i = 0; i < r->count; i++)
        if (r->s[i].layer == layer && strcmp(r->s[i].name, name) == 0)
            return i;
    return -1;
}

/* A new empty series for (layer, name) shaped like t, or NULL with r->status set. */
static series *add(tg_recorder *r, int layer, const char *name, const tg_tensor *t)
{
    if (r->count == MAX_SERIES || strlen(name) > MAX_NAME) {
        if (r->count == MAX_SERIES)
            stop(r, TG_ERR_ARG, "more than %d series (at \"%.64s\")", MAX_SERIES, name);
        else
            stop(r, TG_ERR_ARG, "name \"%.64s...\" is longer than %d bytes", name, MAX_NAME);
        return NULL;
    }
    series *s = &r->s[r->count++];
    memset(s, 0, sizeof *s);
    strcpy(s->name, name);
    s->layer = layer;
    s->dtype = t->dtype;
    s->ndim = t->ndim;
    memcpy(s->shape, t->shape, sizeof s->shape);
    s->width = t->numel;
    s->last_group = -1;
    return s;
}

void tg_recorder_observe(void *user, const char *name, const tg_tensor *t)
{
    tg_recorder *r = user;
    if (!r || !name || !t || r->status != TG_OK)
        return;
    int i = find(r, (int)(r->group % r->layers), name);
    if (i >= 0 && r->s[i].last_group == r->group) { /* the name repeats: next layer's turn */
        r->group++;
        i = find(r, (int)(r->group % r->layers), name);
    }
    series *s = i >= 0 ? &r->s[i] : add(r, (int)(r->group % r->layers), name, t);
    if (!s)
        return;
    if (t->dtype != s->dtype || t->ndim != s->ndim ||
        memcmp(t->shape, s->shape, (size_t)t->ndim * sizeof t->shape[0]) != 0) {
        char a[64], b[64];
        tg_tensor first = { .ndim = s->ndim };      /* the series' shape, for printing */
        memcpy(first.shape, s->shape, sizeof first.shape);
        stop(r, TG_ERR_SHAPE, "layer %d \"%s\" reported %s %s after %s %s", s->layer, s->name,
             tg_shape_str(t, a, sizeof a), t->dtype == TG_F64 ? "f64" : "f32",
             tg_shape_str(&first, b, sizeof b), s->dtype == TG_F64 ? "f64" : "f32");
        return;
    }
    size_t row = (size_t)s->width * tg_dtype_size(s->dtype);
    if (s->rows == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        unsigned char *p = realloc(s->data, (size_t)cap * row);
        if (!p) {
            stop(r, TG_ERR_NOMEM, "out of memory for %lld rows of \"%s\"", (long long)cap,
                 s->name);
            return;
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + (size_t)s->rows * row, t->data, row);
    s->rows++;
    s->last_group = r->group;
}

tg_status tg_recorder_status(const tg_recorder *r)
{
    if (!r)
        return tg_error_set(TG_ERR_NULL, "recorder_status: recorder is NULL");
    return r->status == TG_OK ? TG_OK : tg_error_set(r->status, "recorder: %s", r->msg);
}

int tg_recorder_count(const tg_recorder *r)
{
    return r ? r->count : 0;
}

static void describe(const series *s, tg_series *out)
{
    out->name = s->name;
    out->layer = s->layer;
    out->dtype = s->dtype;
    out->ndim = s->ndim;
    memcpy(out->shape, s->shape, sizeof out->shape);
    out->width = s->width;
    out->rows = s->rows;
    out->data = s->data;
}

tg_status tg_recorder_series(const tg_recorder *r, int i, tg_series *out)
{
    if (!r || !out)
        return tg_error_set(TG_ERR_NULL, "recorder_series: %s is NULL", !r ? "recorder" : "out");
    if (i < 0 || i >= r->count)
        return tg_error_set(TG_ERR_ARG, "recorder_series: index %d outside [0,%d)", i,
                            r->count);
    describe(&r->s[i], out);
    return TG_OK;
}

tg_status tg_recorder_get(const tg_recorder *r, int layer, const char *name, tg_series *out)
{
    if (!r || !name || !out)
        return tg_error_set(TG_ERR_NULL, "recorder_get: %s is NULL",
                            !r ? "recorder" : !name ? "name" : "out");
    int i = find(r, layer, name);
    if (i < 0)
        return tg_error_set(TG_ERR_ARG, "recorder_get: no series \"%s\" in layer %d", name,
                            layer);
    describe(&r->s[i], out);
    return TG_OK;
}

double tg_series_at(const tg_series *s, int64_t row, int64_t j)
{
    size_t k = (size_t)(row * s->width + j);
    if (s->dtype == TG_F64)
        return ((const double *)s->data)[k];
    return ((const float *)s->data)[k];
}
