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
 * lr(step), step counted from 0 (torch.optim.lr_scheduler's semantics, the scheduler
 * stepped after each optimizer step). Use one by hand (tg_schedule_lr, then
 * tg_optim_set_lr before each step), or attach it to the optimizer
 * (tg_optim_set_schedule), which then sets the lr itself and saves the schedule and its
 * state in checkpoints.
 */
typedef enum tg_schedule_kind {
    TG_SCHED_CONSTANT,     /* base_lr                                                   */
    TG_SCHED_STEP,         /* base_lr * gamma^floor(step / step_size)  (StepLR)         */
    TG_SCHED_EXPONENTIAL,  /* base_lr * gamma^step                     (ExponentialLR)  */
    TG_SCHED_COSINE,       /* linear warm-up over warmup_steps, then cosine from base_lr
                              to min_lr at total_steps (held after)                     */
    TG_SCHED_PLATEAU,      /* ReduceLROnPlateau, mode "min": lr *= factor when the metric
                              given to tg_optim_observe stops improving                 */
    TG_SCHED_KIND_COUNT    /* the number of kinds, not a kind */
} tg_schedule_kind;

typedef struct tg_schedule {
    tg_schedule_kind kind;
    double  base_lr;
    double  gamma;          /* STEP, EXPONENTIAL                                        */
    int64_t step_size;      /* STEP (>= 1)                                              */
    int64_t warmup_steps;   /* COSINE (>= 0)                                            */
    int64_t total_steps;    /* COSINE (> warmup_steps)                                  */
    double  min_lr;         /* COSINE (eta_min), PLATEAU (min_lr)                       */
    double  warmup_start;   /* COSINE: the lr of step 0 as a fraction of base_lr (LinearLR's
                               start_factor, in [0, 1]; 0 by default)                   */
    /* PLATEAU, torch's names (defaults from tg_schedule_defaults) */
    double  factor;         /* lr *= factor on a plateau, in [0, 1)      (0.1)           */
    int64_t patience;       /* calls without improvement tolerated, >= 0 (10)            */
    double  threshold;      /* least improvement that counts, >= 0       (1e-4)          */
    bool    threshold_abs;  /* false: relative ("rel": m < best*(1-threshold)); true:
                               absolute ("abs": m < best - threshold)  (false)           */
    int64_t cooldown;       /* calls after a reduction that ignore plateaus, >= 0 (0)    */
    double  eps;            /* a reduction smaller than eps is not applied (1e-8)        */
} tg_schedule;

/* A schedule of kind with base_lr and torch's defaults for the rest: STEP gamma 0.1 and
   step_size 1, EXPONENTIAL gamma 1, COSINE no warm-up over 1 step, PLATEAU factor 0.1,
   patience 10, threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8. */
tg_schedule tg_schedule_defaults(tg_schedule_kind kind, double base_lr);

/* Checks s (every field of its kind finite and in range, as above). On failure
   tg_last_error() says which field, e.g. "schedule: cosine: total_steps 5 must exceed
   warmup_steps 5". Returns TG_OK, TG_ERR_NULL, TG_ERR_ARG. */
tg_status tg_schedule_check(const tg_schedule *s);

/* The learning rate at step (>= 0):
   COSINE   f = warmup_start + (1 - warmup_start) * step / warmup_steps, base_lr * f while
            step < warmup_steps (torch's LinearLR); then
            min_lr + (base_lr - min_lr) * (1 + cos(pi * e / T)) / 2 with
            e = step - warmup_steps, T = total_steps - warmup_steps (CosineAnnealingLR's
            closed form; torch's own recursive update agrees to ~1e-16 relative), and
            min_lr from total_steps on (where torch's cosine would rise again).
   PLATEAU  base_lr: its later values depend on the metrics, which only an optimizer the
            schedule is attached to sees (tg_optim_get_lr).
   Returns NaN (which tg_optim_step then refuses) for NULL, a negative step or a schedule
   tg_schedule_check refuses, with the reason in tg_last_error(). */
double tg_schedule_lr(const tg_schedule *s, int64_t step);

/* Attaches a copy of s to opt, or detaches the schedule when s is NULL. From then on
   every tg_optim_step first sets the lr to tg_schedule_lr(s, tg_optim_steps(opt)) (any
   tg_optim_set_lr in between is overridden); a PLATEAU schedule instead sets the lr to
   base_lr now and leaves it to tg_optim_observe. Attaching starts the schedule's state
   afresh. Checkpoints save the schedule and its state, and tg_checkpoint_load restores
   them (a file without one leaves opt's schedule as it is).
   Returns TG_ERR_NULL (opt NULL), TG_ERR_ARG (s refused by tg_schedule_check; opt
   unchanged), with the reason in tg_last_error(). */
tg_status tg_optim_set_schedule(tg_optim *opt, const tg_schedule *s);

/* The attached schedule, NULL when there is none (or opt is NULL). */
const tg_schedule *tg_optim_get_schedule(const tg_optim *opt);

/* One ReduceLROnPlateau step with metric (lower is better, e.g. a validation loss; NaN
   counts as no improvement, as in torch): an improvement on the best metric so far (by
   more than threshold) resets the count of bad calls; more than patience bad calls in a
   row (not counting cooldown calls after a reduction) set lr = max(lr * factor, min_lr),
   unless that changes it by eps or less. Does nothing with no schedule or one of another
   kind. Returns TG_OK, or TG_ERR_NULL for a NULL opt (tg_last_error() says so). */
tg_status tg_optim_observe(tg_optim *opt, double metric);

#ifdef __cplusplus
}
#endif
#endif /* TG_OPTIM_OPTIM_H */
