/* autograd/params.h: named parameters (values + gradients) that optimizers, clipping,
   checkpoints and gradcheck iterate over. They live outside any tape. */
#ifndef TG_AUTOGRAD_PARAMS_H
#define TG_AUTOGRAD_PARAMS_H

#include <stdint.h>

#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_params tg_params;

/* An empty collection whose tensors will all be of dtype. NULL for an unknown dtype or
   when out of memory; the reason in tg_last_error() (tensor/tensor.h), as for every
   function here that returns NULL. */
tg_params *tg_params_new(tg_dtype dtype);

/* Frees the collection and every tensor it made. NULL is a no-op. */
void tg_params_free(tg_params *ps);

/* Adds a zero-filled parameter named name (copied; unique, at most 63 bytes) of the
   given shape, with a zeroed gradient. The collection owns it.
   Returns NULL on a NULL, empty, too long or duplicate name, a bad shape, or out of
   memory; the reason in tg_last_error(), e.g. 'params_add: name "w" is taken'. */
tg_tensor *tg_params_add(tg_params *ps, const char *name, int ndim, const int64_t *shape);

/* Number of parameters, in the order they were added. */
int tg_params_count(const tg_params *ps);
/* Parameter i (0 <= i < count), or NULL (and a reason) out of range. */
tg_tensor *tg_params_at(tg_params *ps, int i);
/* Name of parameter i, or NULL (and a reason) out of range. */
const char *tg_params_name(const tg_params *ps, int i);
/* The parameter called name, or NULL (and a reason) when there is none. */
tg_tensor *tg_params_find(tg_params *ps, const char *name);
/* The dtype given to tg_params_new. */
tg_dtype tg_params_dtype(const tg_params *ps);
/* Total number of elements over all parameters. */
int64_t tg_params_numel(const tg_params *ps);
/* Sets every gradient to zero. */
void tg_params_zero_grad(tg_params *ps);

#ifdef __cplusplus
}
#endif
#endif /* TG_AUTOGRAD_PARAMS_H */
