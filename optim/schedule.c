/* optim/schedule.c: learning-rate schedules (constant, step, exponential, cosine with warmup). */
#include <math.h>

#include "optim/optim.h"

#define PI 3.14159265358979323846

double tg_schedule_lr(const tg_schedule *s, int64_t step)
{
    if (!s || step < 0)
        return NAN;
    switch (s->kind) {
    case TG_SCHED_CONSTANT:
        return s->base_lr;
    case TG_SCHED_STEP:
        if (s->step_size < 1)
            return NAN;
        return s->base_lr * pow(s->gamma, (double)(step / s->step_size));
    case TG_SCHED_EXPONENTIAL:
        return s->base_lr * pow(s->gamma, (double)step);
    case TG_SCHED_COSINE:
        if (s->warmup_steps < 0)
            return NAN;
        if (step < s->warmup_steps)
            return s->base_lr * (double)step / (double)s->warmup_steps;
        if (step >= s->total_steps)
            return s->min_lr;
        {
            double progress = (double)(step - s->warmup_steps)
                              / (double)(s->total_steps - s->warmup_steps);
            return s->min_lr
                   + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(PI * progress));
        }
    }
    return NAN;
}
