/* optim/optim.h: SGD, Adam, AdamW, RMSprop, Adagrad (torch.optim's update rules),
   gradient clipping and learning-rate schedules. */
#ifndef TG_OPTIM_OPTIM_H
#define TG_OPTIM_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autograd/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tg_optim_kind {
    TG_SGD, TG_ADAM, TG_ADAMW, TG_RMSPROP, TG_ADAGRAD,
    TG_OPTIM_KIND_COUNT    /* the number of kinds, not a kind */
} tg_optim_kind;

/* "sgd", "adam", "adamw", "rmsprop", "adagrad"; and back (-1 for an unknown name). */
const char *tg_optim_kind_name(tg_optim_kind kind);
int         tg_optim_kind_parse(const char *name);

typedef struct tg_optim_config {
    tg_optim_kind kind;
    double lr, weight_decay;
    double momentum, dampening; bool nesterov;        /* SGD, RMSprop (momentum) */
    double beta1, beta2, eps;                         /* Adam, AdamW (eps: all)  */
    double alpha; bool centered;                      /* RMSprop                 */
    double lr_decay, initial_accumulator_value;       /* Adagrad                 */
} tg_optim_config;

/* torch 1.13's defaults for kind: SGD lr 0.01 (torch has no default; this is ours),
   Adam/AdamW lr 1e-3 betas (0.9,0.999) eps 1e-8 (AdamW weight_decay 1e-2),
   RMSprop lr 1e-2 alpha 0.99 eps 1e-8, Adagrad lr 1e-2 eps 1e-10. */
tg_optim_config tg_optim_defaults(tg_optim_kind kind);

/* Checks cfg the way tg_optim_new does (torch's rules, and every field finite). On
   failure the one-line reason, e.g. "adam: invalid beta2 1 (must be in [0, 1))", is the
   calling thread's tg_last_error() and is copied to err (may be NULL/0; "" on success).
   Only the fields of cfg->kind are checked.
   Returns TG_OK, TG_ERR_NULL for NULL cfg, TG_ERR_ARG for an invalid config. */
tg_status tg_optim_config_check(const tg_optim_config *cfg, char *err, size_t errsize);

typedef struct tg_optim tg_optim;

/* An optimizer over every parameter of ps (ps must outlive it), with zeroed state
   (Adagrad's sum starts at initial_accumulator_value). The state (moments, buffers) is
   kept in the parameters' dtype, as torch does; each element is updated in double and
   rounded once. A parameter whose grad is NULL is skipped, like torch's grad None.
   NULL on a NULL argument, an invalid config (negative lr, eps, momentum, betas outside
   [0,1), nesterov without momentum or with dampening, unknown kind) or out of memory;
   tg_last_error() then says which, e.g. "optim_new: adam: invalid beta2 1 (must be in
   [0, 1))". */
tg_optim *tg_optim_new(tg_params *ps, const tg_optim_config *cfg);

/* One update of every parameter from its gradient, exactly as torch.optim does.
   Returns TG_ERR_NONFINITE (parameters untouched) when a gradient holds NaN or inf,
   TG_ERR_NULL for NULL; also (parameters untouched) TG_ERR_ARG when the lr set by
   tg_optim_set_lr is negative or not finite, TG_ERR_SHAPE when parameters were added to
   ps after tg_optim_new. tg_last_error() says why, naming the parameter whose gradient
   is not finite. */
tg_status tg_optim_step(tg_optim *opt);

void    tg_optim_set_lr(tg_optim *opt, double lr);
double  tg_optim_get_lr(const tg_optim *opt);
/* Steps taken so far (restored by checkpoints). */
int64_t tg_optim_steps(const tg_optim *opt);
const tg_optim_config *tg_optim_get_config(const tg_optim *opt);
void    tg_optim_free(tg_optim *opt);

/* torch's clip_grad_norm_: norm = sqrt(sum of g^2) over all gradients (summed in double,
   in a fixed order); when max_norm / (norm + 1e-6) < 1 every gradient is multiplied by it.
   Returns the norm before clipping (0 for NULL or no gradients). A non-finite norm is
   returned and NOT applied; nothing is applied either when max_norm is negative or NaN. */
double tg_clip_grad_norm(tg_params *ps, double max_norm);

/* Clamps every gradient element to [-clip, clip] (char-rnn's grad_clip); NaN elements
   stay NaN (torch.clamp's rule, so tg_optim_step still reports them). A negative or NaN
   clip, or a NULL ps, changes nothing. */
void tg_clip_grad_value(tg_params *ps, double clip);

/* ---- learning-rate schedules -------------------------------------------------
 * lr(step), step counted from 0; apply with tg_optim_set_lr before each step.
 */
typedef enum tg_schedule_kind {
    TG_SCHED_CONSTANT,     /* base_lr                                                   */
    TG_SCHED_STEP,         /* base_lr * gamma^floor(step / step_size)  (StepLR)         */
    TG_SCHED_EXPONENTIAL,  /* base_lr * gamma^step                     (ExponentialLR)  */
    TG_SCHED_COSINE        /* linear warmup from 0 over warmup_steps, then cosine from
                              base_lr to min_lr at total_steps (held after)             */
} tg_schedule_kind;

typedef struct tg_schedule {
    tg_schedule_kind kind;
    double  base_lr;
    double  gamma;          /* STEP, EXPONENTIAL */
    int64_t step_size;      /* STEP (>= 1)       */
    int64_t warmup_steps;   /* COSINE            */
    int64_t total_steps;    /* COSINE            */
    double  min_lr;         /* COSINE            */
} tg_schedule;

/* The learning rate at step (>= 0). COSINE: base_lr*step/warmup_steps while
   step < warmup_steps, then min_lr + (base_lr-min_lr)*(1+cos(pi*p))/2 with
   p = (step-warmup_steps)/(total_steps-warmup_steps), min_lr from total_steps on.
   Returns NaN (which tg_optim_step then refuses) for NULL, a negative step, an unknown
   kind, step_size < 1, or negative warmup_steps. */
double tg_schedule_lr(const tg_schedule *s, int64_t step);

#ifdef __cplusplus
}
#endif
#endif /* TG_OPTIM_OPTIM_H */
