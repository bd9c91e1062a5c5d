/* autograd/params.c: the named parameter collection (values and gradients outside any tape). */
#include <stdlib.h>
#include <string.h>

#include "autograd/params.h"
#include "tensor/tensor_internal.h"

enum { NAME_MAX_LEN = 63 };

typedef struct param_entry {
    char       name[NAME_MAX_LEN + 1];
    tg_tensor *tensor;
} param_entry;

static int find(const struct tg_params *ps, const char *name);

struct tg_params {
    tg_dtype     dtype;
    int          count, cap;
    param_entry *items;
};

tg_params *tg_params_new(tg_dtype dtype)
{
    if (dtype != TG_F32 && dtype != TG_F64) {
        tg_error_set(TG_ERR_ARG, "params_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    tg_params *ps = calloc(1, sizeof *ps);
    if (!ps) {
        tg_error_set(TG_ERR_NOMEM, "params_new: out of memory");
        return NULL;
    }
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
    if (!ps || !name) {
        tg_error_set(TG_ERR_NULL, "params_add: %s is NULL", !ps ? "collection" : "name");
        return NULL;
    }
    if (!name[0] || strlen(name) > NAME_MAX_LEN) {
        tg_error_set(TG_ERR_ARG, "params_add: name \"%.*s%s\" is %s", 16, name,
                     strlen(name) > 16 ? "..." : "",
                     name[0] ? "longer than 63 bytes" : "empty");
        return NULL;
    }
    if (find(ps, name) >= 0) {
        tg_error_set(TG_ERR_ARG, "params_add: name \"%s\" is taken", name);
        return NULL;
    }
    if (ps->count == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        param_entry *items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items) {
            tg_error_set(TG_ERR_NOMEM, "params_add: out of memory");
            return NULL;
        }
        ps->items = items;
        ps->cap = cap;
    }
    tg_tensor *t = tg_tensor_new(ps->dtype, ndim, shape);
    if (!t || tg_tensor_requires_grad(t) != TG_OK) {
        tg_tensor_free(t);
        tg_error_wrap("params_add: \"%s\"", name);   /* "...: tensor_new: 5 dims ..." */
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

/* Whether i indexes a parameter of ps; if not, says so on behalf of who. */
static bool check_index(const tg_params *ps, int i, const char *who)
{
    if (!ps)
        tg_error_set(TG_ERR_NULL, "%s: collection is NULL", who);
    else if (i < 0 || i >= ps->count)
        tg_error_set(TG_ERR_ARG, "%s: index %d outside [0,%d)", who, i, ps->count);
    return ps && i >= 0 && i < ps->count;
}

tg_tensor *tg_params_at(tg_params *ps, int i)
{
    return check_index(ps, i, "params_at") ? ps->items[i].tensor : NULL;
}

const char *tg_params_name(const tg_params *ps, int i)
{
    return check_index(ps, i, "params_name") ? ps->items[i].name : NULL;
}

/* The index of the parameter called name, or -1. */
static int find(const tg_params *ps, const char *name)
{
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            return i;
    return -1;
}

tg_tensor *tg_params_find(tg_params *ps, const char *name)
{
    if (!ps || !name) {
        tg_error_set(TG_ERR_NULL, "params_find: %s is NULL", !ps ? "collection" : "name");
        return NULL;
    }
    int i = find(ps, name);
    if (i < 0)
        tg_error_set(TG_ERR_ARG, "params_find: no parameter is named \"%s\"", name);
    return i >= 0 ? ps->items[i].tensor : NULL;
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
