/* optim/optim_internal.h: the optimizer's config field list and state layout, as the
   checkpoint reader and writer see them (not public). */
#ifndef TG_OPTIM_OPTIM_INTERNAL_H
#define TG_OPTIM_OPTIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "optim/optim.h"

/*
 * Field lists: every field of a struct that checkpoints store, in declaration order, each
 * with its storage class:
 *   KIND  an enum, a u32
 *   FLAG  a bool, one byte (0 or 1) of a u32 flags word, the first FLAG in its lowest byte
 *   REAL  a double, its IEEE-754 bit pattern as a u64
 *   INT   an int64_t, as a u64
 * A section stores the kind, the flags word, then the REALs and INTs in list order.
 * optim.c checks at compile time that each list describes its struct exactly (same size,
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

#define TG_SCHEDULE_FIELDS(X)                                                           \
    X(kind, KIND)                                                                       \
    X(base_lr, REAL)                                                                    \
    X(gamma, REAL)                                                                      \
    X(step_size, INT)                                                                   \
    X(warmup_steps, INT)                                                                \
    X(total_steps, INT)                                                                 \
    X(min_lr, REAL)                                                                     \
    X(warmup_start, REAL)                                                               \
    X(factor, REAL)                                                                     \
    X(patience, INT)                                                                    \
    X(threshold, REAL)                                                                  \
    X(threshold_abs, FLAG)                                                              \
    X(cooldown, INT)                                                                    \
    X(eps, REAL)

/* A reduce-on-plateau schedule's state (ReduceLROnPlateau's best, num_bad_epochs and
   cooldown_counter); the lr itself is the optimizer's. */
typedef struct tg_plateau_state {
    double  best;            /* lowest metric so far; +inf before the first */
    int64_t bad_calls;       /* calls in a row without improvement          */
    int64_t cooldown_left;   /* calls that still ignore a plateau           */
} tg_plateau_state;
#define TG_PLATEAU_STATE_FIELDS(X) X(best, REAL) X(bad_calls, INT) X(cooldown_left, INT)

/* Per storage class: the C type of a mirror struct, and whether it is a FLAG or one of
   the 8-byte values (REAL, INT). */
#define TG_FIELD_CTYPE_KIND int
#define TG_FIELD_CTYPE_FLAG bool
#define TG_FIELD_CTYPE_REAL double
#define TG_FIELD_CTYPE_INT  int64_t
#define TG_FIELD_IS_FLAG_KIND 0
#define TG_FIELD_IS_FLAG_FLAG 1
#define TG_FIELD_IS_FLAG_REAL 0
#define TG_FIELD_IS_FLAG_INT  0
#define TG_FIELD_IS_REAL_KIND 0
#define TG_FIELD_IS_REAL_FLAG 0
#define TG_FIELD_IS_REAL_REAL 1
#define TG_FIELD_IS_REAL_INT  0
#define TG_FIELD_IS_INT_KIND 0
#define TG_FIELD_IS_INT_FLAG 0
#define TG_FIELD_IS_INT_REAL 0
#define TG_FIELD_IS_INT_INT  1
#define TG_FIELD_ADD_FLAG_(field, CLASS) +TG_FIELD_IS_FLAG_##CLASS
#define TG_FIELD_ADD_WORD_(field, CLASS) +TG_FIELD_IS_REAL_##CLASS + TG_FIELD_IS_INT_##CLASS
enum {
    TG_OPTIM_CONFIG_FLAGS = 0 TG_OPTIM_CONFIG_FIELDS(TG_FIELD_ADD_FLAG_),
    TG_OPTIM_CONFIG_WORDS = 0 TG_OPTIM_CONFIG_FIELDS(TG_FIELD_ADD_WORD_),
    TG_SCHEDULE_FLAGS = 0 TG_SCHEDULE_FIELDS(TG_FIELD_ADD_FLAG_),
    TG_SCHEDULE_WORDS = 0 TG_SCHEDULE_FIELDS(TG_FIELD_ADD_WORD_),
    TG_PLATEAU_STATE_WORDS = 0 TG_PLATEAU_STATE_FIELDS(TG_FIELD_ADD_WORD_)
};

/* ReduceLROnPlateau's state before its first call. */
tg_plateau_state tg_plateau_start(void);

/* One ReduceLROnPlateau call with metric: updates *st and returns the new lr (lr when
   it does not change). s is a valid PLATEAU schedule. */
double tg_plateau_observe(const tg_schedule *s, tg_plateau_state *st, double lr,
                          double metric);

/* The attached schedule's plateau state (NULL without a schedule), and a schedule with
   its state to install, as a checkpoint restores them (s valid; cannot fail). */
const tg_plateau_state *tg_optim_plateau(const tg_optim *opt);
void tg_optim_install_schedule(tg_optim *opt, const tg_schedule *s,
                               const tg_plateau_state *st);

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
