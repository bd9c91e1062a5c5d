/* nn/recorder.c: a tape observer that records every named result, per layer and name. */
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

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
    int count;
    series s[MAX_SERIES];
};

tg_recorder *tg_recorder_new(int layers)
{
    if (layers < 1 || layers > TG_MAX_LAYERS)
        return NULL;
    tg_recorder *r = calloc(1, sizeof *r);
    if (r)
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
}

void tg_recorder_attach(tg_recorder *r, tg_tape *tape)
{
    tg_tape_set_observer(tape, r ? tg_recorder_observe : NULL, r);
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
        r->status = TG_ERR_ARG;
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
        r->status = TG_ERR_SHAPE;
        return;
    }
    size_t row = (size_t)s->width * tg_dtype_size(s->dtype);
    if (s->rows == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        unsigned char *p = realloc(s->data, (size_t)cap * row);
        if (!p) {
            r->status = TG_ERR_NOMEM;
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
    return r ? r->status : TG_ERR_NULL;
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
        return TG_ERR_NULL;
    if (i < 0 || i >= r->count)
        return TG_ERR_ARG;
    describe(&r->s[i], out);
    return TG_OK;
}

tg_status tg_recorder_get(const tg_recorder *r, int layer, const char *name, tg_series *out)
{
    if (!r || !name || !out)
        return TG_ERR_NULL;
    int i = find(r, layer, name);
    if (i < 0)
        return TG_ERR_ARG;
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
