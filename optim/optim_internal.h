/* optim/optim_internal.h: what checkpoint.c needs to see of an optimizer's state. */
#ifndef TG_OPTIM_OPTIM_INTERNAL_H
#define TG_OPTIM_OPTIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "optim/optim.h"

/*
 * State layout: one malloc'ed block holding nbufs flat buffers one after another, each
 * of tg_params_numel(ps) elements of the parameters' dtype, in parameter order (the
 * state of parameter i starts at the sum of the numels of parameters 0..i-1).
 *
 *   SGD      momentum_buffer                (only when momentum != 0)
 *   Adam(W)  exp_avg, exp_avg_sq
 *   RMSprop  square_avg [, grad_avg when centered] [, momentum_buffer when momentum > 0]
 *   Adagrad  sum
 */
enum { TG_OPTIM_MAX_BUFS = 3 };

/* Number of state buffers a config implies, and the name of buffer i (torch's state key). */
int         tg_optim__nbufs(const tg_optim_config *cfg);
const char *tg_optim__buf_name(const tg_optim_config *cfg, int i);

/* The parameters the optimizer was built over, and their total element count. */
tg_params *tg_optim__params(const tg_optim *opt);
int64_t    tg_optim__numel(const tg_optim *opt);

/* Buffer i (0 <= i < nbufs of the current config) of the state block. */
void *tg_optim__buf(const tg_optim *opt, int i);

/* A block big enough for cfg's buffers (contents undefined), to be filled and handed to
   tg_optim__install; NULL out of memory. *bytes receives its size (0 means "no state":
   the NULL return is then not an error). */
void *tg_optim__alloc_state(const tg_optim *opt, const tg_optim_config *cfg, size_t *bytes);

/* Replaces config, step count and state block (taking ownership of block; the old one
   is freed). Cannot fail: everything was validated and allocated before. */
void tg_optim__install(tg_optim *opt, const tg_optim_config *cfg, int64_t steps, void *block);

#endif /* TG_OPTIM_OPTIM_INTERNAL_H */
