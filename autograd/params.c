/* autograd/params.c: the named parameter collection (values and gradients outside any tape). */
#include <stdlib.h>
#include <string.h>

#include "autograd/params.h"

enum { NAME_MAX_LEN = 63 };

typedef struct param_entry {
    char       name[NAME_MAX_LEN + 1];
    tg_tensor *tensor;
} param_entry;

struct tg_params {
    tg_dtype     dtype;
    int          count, cap;
    param_entry *items;
};

tg_params *tg_params_new(tg_dtype dtype)
{
    if (dtype != TG_F32 && dtype != TG_F64)
        return NULL;
    tg_params *ps = calloc(1, sizeof *ps);
    if (ps)
        ps->dtype = dtype;
    return ps;
}

void tg_params_free(tg_params *ps)
{
    if (!ps)
        return;
    for (int i = 0; i < ps->count; i++)
        tg_tensor_free(ps->items[i].tensor);
    free(ps->items);
    free(ps);
}

tg_tensor *tg_params_add(tg_params *ps, const char *name, int ndim, const int64_t *shape)
{
    if (!ps || !name || !name[0] || strlen(name) > NAME_MAX_LEN || tg_params_find(ps, name))
        return NULL;
    if (ps->count == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        param_entry *items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items)
            return NULL;
        ps->items = items;
        ps->cap = cap;
    }
    tg_tensor *t = tg_tensor_new(ps->dtype, ndim, shape);
    if (!t)
        return NULL;
    if (tg_tensor_requires_grad(t) != TG_OK) {
        tg_tensor_free(t);
        return NULL;
    }
    param_entry *e = &ps->items[ps->count++];
    strcpy(e->name, name);
    e->tensor = t;
    return t;
}

int tg_params_count(const tg_params *ps)
{
    return ps ? ps->count : 0;
}

tg_tensor *tg_params_at(tg_params *ps, int i)
{
    return ps && i >= 0 && i < ps->count ? ps->items[i].tensor : NULL;
}

const char *tg_params_name(const tg_params *ps, int i)
{
    return ps && i >= 0 && i < ps->count ? ps->items[i].name : NULL;
}

tg_tensor *tg_params_find(tg_params *ps, const char *name)
{
    if (!ps || !name)
        return NULL;
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            return ps->items[i].tensor;
    return NULL;
}

tg_dtype tg_params_dtype(const tg_params *ps)
{
    return ps ? ps->dtype : TG_F32;
}

int64_t tg_params_numel(const tg_params *ps)
{
    int64_t n = 0;
    for (int i = 0; ps && i < ps->count; i++)
        n += ps->items[i].tensor->numel;
    return n;
}

void tg_params_zero_grad(tg_params *ps)
{
    for (int i = 0; ps && i < ps->count; i++)
        tg_tensor_zero_grad(ps->items[i].tensor);
}
