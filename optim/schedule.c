/* optim/schedule.c: learning-rate schedules (constant, step, exponential, warm-up + cosine,
   reduce-on-plateau) with torch.optim.lr_scheduler's semantics. */
#include <assert.h>
#include <math.h>
#include <stddef.h>

#include "optim/optim.h"
#include "optim/optim_internal.h"
#include "tensor/tensor_internal.h"   /* tg_error_set */

#define PI 3.14159265358979323846

/* TG_SCHEDULE_FIELDS describes tg_schedule exactly (see optim_internal.h), and
   TG_PLATEAU_STATE_FIELDS tg_plateau_state. */
static_assert(sizeof(tg_schedule_kind) == sizeof(int), "a KIND field is stored as an int");
#define MIRROR_FIELD(field, CLASS) TG_FIELD_CTYPE_##CLASS field;
typedef struct schedule_mirror { TG_SCHEDULE_FIELDS(MIRROR_FIELD) } schedule_mirror;
typedef struct plateau_mirror { TG_PLATEAU_STATE_FIELDS(MIRROR_FIELD) } plateau_mirror;
#define SAME_OFFSET(field, CLASS)                                                      \
    static_assert(offsetof(schedule_mirror, field) == offsetof(tg_schedule, field),    \
                  "TG_SCHEDULE_FIELDS: " #field " out of place");
TG_SCHEDULE_FIELDS(SAME_OFFSET)
#undef SAME_OFFSET
#define SAME_OFFSET(field, CLASS)                                                      \
    static_assert(offsetof(plateau_mirror, field) == offsetof(tg_plateau_state, field), \
                  "TG_PLATEAU_STATE_FIELDS: " #field " out of place");
TG_PLATEAU_STATE_FIELDS(SAME_OFFSET)
#undef SAME_OFFSET
#undef MIRROR_FIELD
static_assert(sizeof(schedule_mirror) == sizeof(tg_schedule),
              "TG_SCHEDULE_FIELDS must list every field of tg_schedule");
static_assert(sizeof(plateau_mirror) == sizeof(tg_plateau_state),
              "TG_PLATEAU_STATE_FIELDS must list every field of tg_plateau_state");
static_assert(TG_SCHEDULE_FLAGS <= 4, "the flags word holds at most four flags");

static const char *const kind_names[] = { "constant", "step", "exponential", "cosine",
                                          "plateau" };
static_assert(sizeof kind_names / sizeof kind_names[0] == TG_SCHED_KIND_COUNT,
              "one name per tg_schedule_kind");

tg_schedule tg_schedule_defaults(tg_schedule_kind kind, double base_lr)
{
    return (tg_schedule){ .kind = kind, .base_lr = base_lr,
                          .gamma = kind == TG_SCHED_STEP ? 0.1 : 1.0, .step_size = 1,
                          .total_steps = 1, .factor = 0.1, .patience = 10,
                          .threshold = 1e-4, .eps = 1e-8 };
}

/* ---- validation ---------------------------------------------------------------- */

/* v finite and in [lo, hi] (hi_open: [lo, hi)); else false with the reason set. */
static bool real_in(const char *kind, const char *field, double v, double lo, double hi,
                    bool hi_open)
{
    if (isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi))
        return true;
    tg_error_set(TG_ERR_ARG, "schedule: %s: invalid %s %g (must be finite and in [%g, %g%s)",
                 kind, field, v, lo, hi, hi_open ? ")" : "]");
    return false;
}

static bool int_at_least(const char *kind, const char *field, int64_t v, int64_t lo)
{
    if (v >= lo)
        return true;
    tg_error_set(TG_ERR_ARG, "schedule: %s: invalid %s %lld (must be >= %lld)", kind, field,
                 (long long)v, (long long)lo);
    return false;
}

/* The checks of the fields s->kind reads (base_lr is checked for every kind). */
static bool kind_fields_valid(const tg_schedule *s, const char *k)
{
    switch (s->kind) {
    case TG_SCHED_CONSTANT:
        return true;
    case TG_SCHED_STEP:
        return real_in(k, "gamma", s->gamma, 0.0, INFINITY, false)
               && int_at_least(k, "step_size", s->step_size, 1);
    case TG_SCHED_EXPONENTIAL:
        return real_in(k, "gamma", s->gamma, 0.0, INFINITY, false);
    case TG_SCHED_COSINE:
        if (!int_at_least(k, "warmup_steps", s->warmup_steps, 0)
            || !real_in(k, "warmup_start", s->warmup_start, 0.0, 1.0, false)
            || !real_in(k, "min_lr", s->min_lr, 0.0, INFINITY, false))
            return false;
        if (s->total_steps > s->warmup_steps)
            return true;
        tg_error_set(TG_ERR_ARG, "schedule: cosine: total_steps %lld must exceed "
                     "warmup_steps %lld", (long long)s->total_steps,
                     (long long)s->warmup_steps);
        return false;
    case TG_SCHED_PLATEAU:
        return real_in(k, "factor", s->factor, 0.0, 1.0, true)
               && int_at_least(k, "patience", s->patience, 0)
               && real_in(k, "threshold", s->threshold, 0.0, INFINITY, false)
               && int_at_least(k, "cooldown", s->cooldown, 0)
               && real_in(k, "min_lr", s->min_lr, 0.0, INFINITY, false)
               && real_in(k, "eps", s->eps, 0.0, INFINITY, false);
    case TG_SCHED_KIND_COUNT:
        break;
    }
    return false;
}

tg_status tg_schedule_check(const tg_schedule *s)
{
    if (!s)
        return tg_error_set(TG_ERR_NULL, "schedule: NULL schedule");
    if ((int)s->kind < 0 || (int)s->kind >= TG_SCHED_KIND_COUNT)
        return tg_error_set(TG_ERR_ARG, "schedule: unknown kind %d", (int)s->kind);
    const char *k = kind_names[s->kind];
    if (!real_in(k, "base_lr", s->base_lr, 0.0, INFINITY, false) || !kind_fields_valid(s, k))
        return TG_ERR_ARG;
    return TG_OK;
}

/* ---- lr(step) ------------------------------------------------------------------ */

/* torch's LinearLR then CosineAnnealingLR closed forms, in torch's order of operations. */
static double cosine_lr(const tg_schedule *s, int64_t step)
{
    if (step < s->warmup_steps) {
        double f = s->warmup_start
                   + (1.0 - s->warmup_start) * (double)step / (double)s->warmup_steps;
        return s->base_lr * f;
    }
    if (step >= s->total_steps)
        return s->min_lr;
    double e = (double)(step - s->warmup_steps), t = (double)(s->total_steps - s->warmup_steps);
    return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(PI * e / t)) / 2.0;
}

double tg_schedule_lr(const tg_schedule *s, int64_t step)
{
    if (tg_schedule_check(s) != TG_OK)
        return NAN;
    if (step < 0) {
        tg_error_set(TG_ERR_ARG, "schedule: negative step %lld", (long long)step);
        return NAN;
    }
    switch (s->kind) {
    case TG_SCHED_STEP:
        return s->base_lr * pow(s->gamma, (double)(step / s->step_size));
    case TG_SCHED_EXPONENTIAL:
        return s->base_lr * pow(s->gamma, (double)step);
    case TG_SCHED_COSINE:
        return cosine_lr(s, step);
    default:   /* CONSTANT; PLATEAU before any metric */
        return s->base_lr;
    }
}

/* ---- reduce on plateau ----------------------------------------------------------- */

tg_plateau_state tg_plateau_start(void)
{
    return (tg_plateau_state){ .best = INFINITY, .bad_calls = 0, .cooldown_left = 0 };
}

double tg_plateau_observe(const tg_schedule *s, tg_plateau_state *st, double lr,
                          double metric)
{
    bool better = s->threshold_abs ? metric < st->best - s->threshold
                                   : metric < st->best * (1.0 - s->threshold);
    if (better) {
        st->best = metric;
        st->bad_calls = 0;
    } else {
        st->bad_calls++;
    }
    if (st->cooldown_left > 0) {
        st->cooldown_left--;
        st->bad_calls = 0;   /* plateaus during the cooldown do not count */
    }
    if (st->bad_calls > s->patience) {
        double reduced = fmax(lr * s->factor, s->min_lr);
        if (lr - reduced > s->eps)
            lr = reduced;
        st->cooldown_left = s->cooldown;
        st->bad_calls = 0;
    }
    return lr;
}
