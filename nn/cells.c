/* nn/cells.c: the cell type registry: the library's built-in types, and those a program or
   a plug-in registers at run time. */
#include <pthread.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "tensor/tensor_internal.h"

/* The built-in cell types, one line each, in the order they are listed (charlm's help).
   Each is defined in its cell's file (nn/lstm.c defines tg_lstm_type); adding a cell to
   the library is that file plus its line here. */
#define BUILTIN_CELL_TYPES(X) \
    X(tg_rnn_type)            \
    X(tg_lstm_type)           \
    X(tg_gru_type)            \
    X(tg_lnlstm_type)         \
    X(tg_peephole_type)       \
    X(tg_torchgru_type)       \
    X(tg_mgu_type)            \
    X(tg_indrnn_type)

#define DECLARE_TYPE(t) extern const tg_cell_type t;
BUILTIN_CELL_TYPES(DECLARE_TYPE)
#define LIST_TYPE(t) &t,
static const tg_cell_type *const builtin[] = { BUILTIN_CELL_TYPES(LIST_TYPE) };
enum { NBUILTIN = sizeof builtin / sizeof builtin[0] };

/* Types registered at run time, after the built-in ones. */
static struct {
    pthread_mutex_t lock;
    int count;
    const tg_cell_type *types[TG_MAX_CELL_TYPES];
} registry = { PTHREAD_MUTEX_INITIALIZER, 0, { NULL } };

#define MAX_NAME 63

/* True when name is 1..MAX_NAME characters of [a-z0-9_]. */
static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* The type called name among the built-in and registered ones; the caller holds the lock. */
static const tg_cell_type *find_locked(const char *name)
{
    for (int i = 0; i < NBUILTIN; i++)
        if (strcmp(builtin[i]->name, name) == 0)
            return builtin[i];
    for (int i = 0; i < registry.count; i++)
        if (strcmp(registry.types[i]->name, name) == 0)
            return registry.types[i];
    return NULL;
}

/* Checks everything about type but its name's uniqueness; sets the reason on failure. */
static tg_status check_type(const tg_cell_type *type)
{
    const char *who = "cell_type_register";
    if (!type->name)
        return tg_error_set(TG_ERR_ARG, "%s: the type has no name", who);
    if (!valid_name(type->name))
        return tg_error_set(TG_ERR_ARG, "%s: name \"%.80s\" is not 1-%d characters of "
                            "[a-z0-9_]", who, type->name, MAX_NAME);
    if (type->nstate < 1 || type->nstate > TG_MAX_CELL_STATE)
        return tg_error_set(TG_ERR_ARG, "%s: \"%s\" has nstate %d (must be 1..%d)", who,
                            type->name, type->nstate, TG_MAX_CELL_STATE);
    if (type->size == 0)
        return tg_error_set(TG_ERR_ARG, "%s: \"%s\" has size 0 (its cell struct holds its "
                            "parameters)", who, type->name);
    if (!type->init || !type->step)
        return tg_error_set(TG_ERR_ARG, "%s: \"%s\" has no %s function", who, type->name,
                            type->init ? "step" : "init");
    return TG_OK;
}

tg_status tg_cell_type_register(const tg_cell_type *type)
{
    const char *who = "cell_type_register";
    if (!type)
        return tg_error_set(TG_ERR_NULL, "%s: NULL type", who);
    tg_status st = check_type(type);
    if (st != TG_OK)
        return st;
    pthread_mutex_lock(&registry.lock);
    if (find_locked(type->name))
        st = tg_error_set(TG_ERR_ARG, "%s: the name \"%s\" is taken by another cell type",
                          who, type->name);
    else if (registry.count == TG_MAX_CELL_TYPES)
        st = tg_error_set(TG_ERR_ARG, "%s: \"%s\": the registry is full (%d types)", who,
                          type->name, TG_MAX_CELL_TYPES);
    else
        registry.types[registry.count++] = type;
    pthread_mutex_unlock(&registry.lock);
    return st;
}

const tg_cell_type *tg_cell_type_find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry.lock);
    const tg_cell_type *type = find_locked(name);
    pthread_mutex_unlock(&registry.lock);
    return type;
}

int tg_cell_type_count(void)
{
    pthread_mutex_lock(&registry.lock);
    int n = NBUILTIN + registry.count;
    pthread_mutex_unlock(&registry.lock);
    return n;
}

const tg_cell_type *tg_cell_type_at(int i)
{
    if (i < 0)
        return NULL;
    if (i < NBUILTIN)
        return builtin[i];
    pthread_mutex_lock(&registry.lock);
    const tg_cell_type *type = i - NBUILTIN < registry.count ? registry.types[i - NBUILTIN]
                                                             : NULL;
    pthread_mutex_unlock(&registry.lock);
    return type;
}
