/* optim/optim_internal.h: the optimizer's config field list and state layout, as the
   checkpoint reader and writer see them (not public). */
#ifndef TG_OPTIM_OPTIM_INTERNAL_H
#define TG_OPTIM_OPTIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "optim/optim.h"

/*
 * Every field of tg_optim_config, in declaration order, with how a checkpoint stores it:
 *   KIND  the tg_optim_kind, a u32
 *   FLAG  a bool, one byte (0 or 1) of a u32 flags word, the first FLAG in its lowest byte
 *   REAL  a double, its IEEE-754 bit pattern as a u64
 * The optimizer section stores the kind, the flags word, then the REALs in this order.
 * optim.c checks at compile time that the list describes the struct exactly (same size,
 * every field at its offset), so a new field cannot be forgotten by the checkpoint.
 */
#define TG_OPTIM_CONFIG_FIELDS(X)                                                       \
    X(kind, KIND)                                                                       \
    X(lr, REAL)                                                                         \
    X(weight_decay, REAL)                                                               \
    X(momentum, REAL)                                                                   \
    X(dampening, REAL)                                                                  \
    X(nesterov, FLAG)                                                                   \
    X(beta1, REAL)                                                                      \
    X(beta2, REAL)                                                                      \
    X(eps, REAL)                                                                        \
    X(alpha, REAL)                                                                      \
    X(centered, FLAG)                                                                   \
    X(lr_decay, REAL)                                                                   \
    X(initial_accumulator_value, REAL)

/* The C type of each storage class, and how many FLAGs and REALs the list holds (the
   checkpoint's byte count comes from these). */
#define TG_OPTIM_CTYPE_KIND tg_optim_kind
#define TG_OPTIM_CTYPE_FLAG bool
#define TG_OPTIM_CTYPE_REAL double
#define TG_OPTIM_IS_FLAG_KIND 0
#define TG_OPTIM_IS_FLAG_FLAG 1
#define TG_OPTIM_IS_FLAG_REAL 0
#define TG_OPTIM_IS_REAL_KIND 0
#define TG_OPTIM_IS_REAL_FLAG 0
#define TG_OPTIM_IS_REAL_REAL 1
#define TG_OPTIM_ADD_FLAG_(field, CLASS) +TG_OPTIM_IS_FLAG_##CLASS
#define TG_OPTIM_ADD_REAL_(field, CLASS) +TG_OPTIM_IS_REAL_##CLASS
enum {
    TG_OPTIM_CONFIG_FLAGS = 0 TG_OPTIM_CONFIG_FIELDS(TG_OPTIM_ADD_FLAG_),
    TG_OPTIM_CONFIG_REALS = 0 TG_OPTIM_CONFIG_FIELDS(TG_OPTIM_ADD_REAL_)
};

/*
 * State layout: one malloc'ed block holding nbufs flat buffers one after another, each
 * of tg_params_numel(ps) elements of the parameters' dtype, in parameter order (the
 * state of parameter i starts at the sum of the numels of parameters 0..i-1). Which
 * buffers a config implies is its optimizer's descriptor's business (optim.c):
 *
 *   SGD      momentum_buffer                (only when momentum != 0)
 *   Adam(W)  exp_avg, exp_avg_sq
 *   RMSprop  square_avg [, grad_avg when centered] [, momentum_buffer when momentum > 0]
 *   Adagrad  sum
 */
enum { TG_OPTIM_MAX_BUFS = 3 };

/* Number of state buffers a (valid) config implies, and the name of buffer i (torch's
   state key; NULL past the last). */
int         tg_optim_nbufs(const tg_optim_config *cfg);
const char *tg_optim_buf_name(const tg_optim_config *cfg, int i);

/* The parameters the optimizer was built over, and their total element count then. */
tg_params *tg_optim_params(const tg_optim *opt);
int64_t    tg_optim_numel(const tg_optim *opt);

/* Buffer i (0 <= i < nbufs of the current config) of the state block. */
void *tg_optim_buf(const tg_optim *opt, int i);

/* A block big enough for cfg's buffers (contents undefined), to be filled and handed to
   tg_optim_install; NULL out of memory. *bytes receives its size (0 means "no state":
   the NULL return is then not an error). */
void *tg_optim_alloc_state(const tg_optim *opt, const tg_optim_config *cfg, size_t *bytes);

/* Replaces config, step count and state block (taking ownership of block; the old one
   is freed). Cannot fail: everything was validated and allocated before. */
void tg_optim_install(tg_optim *opt, const tg_optim_config *cfg, int64_t steps, void *block);

#endif /* TG_OPTIM_OPTIM_INTERNAL_H */
