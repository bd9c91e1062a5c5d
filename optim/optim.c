/* optim/optim.c: SGD, Adam, AdamW, RMSprop and Adagrad with torch.optim's (1.13) update rules. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd_internal.h"   /* TG_DISPATCH */
#include "optim/optim.h"
#include "optim/optim_internal.h"

/*
 * Numerics. The state buffers have the parameters' dtype (as torch keeps them): f32
 * models store f32 moments, halving the memory and the checkpoint size, and f64 models
 * get f64 state. Every element is computed in double and rounded once when stored, so
 * for f64 the arithmetic is torch's, operation for operation and in torch's order
 * (x.add_(y, alpha=a) is x + a*y, addcmul is x + (v*y)*z, addcdiv is x + (v*y)/z), and
 * f64 results agree with torch to the last bit or two; f32 results are at least as
 * accurate as torch's float arithmetic.
 *
 * Every update is elementwise, so the OpenMP loops write disjoint elements and results
 * do not depend on the thread count.
 */

struct tg_optim {
    tg_params      *ps;
    tg_optim_config cfg;
    int64_t         steps;     /* updates applied so far                          */
    int             nparams;   /* tg_params_count(ps) when the optimizer was made */
    int64_t         numel;     /* tg_params_numel(ps) then                        */
    void           *state;     /* nbufs flat buffers of numel elements each, or NULL */
};

/* ---- names and defaults ------------------------------------------------------ */

static const char *const kind_names[] = { "sgd", "adam", "adamw", "rmsprop", "adagrad" };
#define NKINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

const char *tg_optim_kind_name(tg_optim_kind kind)
{
    return (int)kind >= 0 && (int)kind < NKINDS ? kind_names[kind] : "unknown";
}

int tg_optim_kind_parse(const char *name)
{
    for (int k = 0; name && k < NKINDS; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

tg_optim_config tg_optim_defaults(tg_optim_kind kind)
{
    tg_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.alpha = 0.99;
    switch (kind) {
    case TG_SGD:     c.lr = 1e-2; c.eps = 0.0; break;
    case TG_ADAM:    c.lr = 1e-3; c.eps = 1e-8; break;
    case TG_ADAMW:   c.lr = 1e-3; c.eps = 1e-8; c.weight_decay = 1e-2; break;
    case TG_RMSPROP: c.lr = 1e-2; c.eps = 1e-8; break;
    case TG_ADAGRAD: c.lr = 1e-2; c.eps = 1e-10; break;
    }
    return c;
}

/* ---- config validation ------------------------------------------------------- */

static tg_status config_error(char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return TG_ERR_ARG;
}

/* v must be finite and >= 0 */
#define NONNEG(field)                                                                   \
    do {                                                                                \
        if (!(cfg->field >= 0.0) || !isfinite(cfg->field))                              \
            return config_error(err, errsize, "%s: invalid " #field " %g (must be finite " \
                                "and >= 0)", name, cfg->field);                         \
    } while (0)
/* v must lie in [0, 1) */
#define UNIT(field)                                                                     \
    do {                                                                                \
        if (!(cfg->field >= 0.0 && cfg->field < 1.0))                                   \
            return config_error(err, errsize, "%s: invalid " #field " %g (must be in "   \
                                "[0, 1))", name, cfg->field);                           \
    } while (0)

tg_status tg_optim_config_check(const tg_optim_config *cfg, char *err, size_t errsize)
{
    if (!cfg) {
        config_error(err, errsize, "optimizer config is NULL");
        return TG_ERR_NULL;
    }
    if ((int)cfg->kind < 0 || (int)cfg->kind >= NKINDS)
        return config_error(err, errsize, "unknown optimizer kind %d", (int)cfg->kind);
    const char *name = kind_names[cfg->kind];
    NONNEG(lr);
    NONNEG(weight_decay);
    switch (cfg->kind) {
    case TG_SGD:
        NONNEG(momentum);
        if (!isfinite(cfg->dampening))
            return config_error(err, errsize, "sgd: invalid dampening %g", cfg->dampening);
        if (cfg->nesterov && (cfg->momentum <= 0.0 || cfg->dampening != 0.0))
            return config_error(err, errsize, "sgd: nesterov needs momentum > 0 and "
                                "dampening 0 (momentum %g, dampening %g)",
                                cfg->momentum, cfg->dampening);
        break;
    case TG_ADAM:
    case TG_ADAMW:
        UNIT(beta1);
        UNIT(beta2);
        NONNEG(eps);
        break;
    case TG_RMSPROP:
        NONNEG(alpha);
        NONNEG(eps);
        NONNEG(momentum);
        break;
    case TG_ADAGRAD:
        NONNEG(lr_decay);
        NONNEG(initial_accumulator_value);
        NONNEG(eps);
        break;
    }
    if (err && errsize)
        err[0] = '\0';
    return TG_OK;
}

#undef NONNEG
#undef UNIT

/* ---- state layout ------------------------------------------------------------ */

int tg_optim__nbufs(const tg_optim_config *cfg)
{
    switch (cfg->kind) {
    case TG_SGD:     return cfg->momentum != 0.0 ? 1 : 0;
    case TG_ADAM:
    case TG_ADAMW:   return 2;
    case TG_RMSPROP: return 1 + (cfg->centered ? 1 : 0) + (cfg->momentum > 0.0 ? 1 : 0);
    case TG_ADAGRAD: return 1;
    }
    return 0;
}

const char *tg_optim__buf_name(const tg_optim_config *cfg, int i)
{
    switch (cfg->kind) {
    case TG_SGD:
        return i == 0 ? "momentum_buffer" : NULL;
    case TG_ADAM:
    case TG_ADAMW:
        return i == 0 ? "exp_avg" : i == 1 ? "exp_avg_sq" : NULL;
    case TG_RMSPROP:
        if (i == 0)
            return "square_avg";
        if (i == 1 && cfg->centered)
            return "grad_avg";
        if (i == 1 + (cfg->centered ? 1 : 0) && cfg->momentum > 0.0)
            return "momentum_buffer";
        return NULL;
    case TG_ADAGRAD:
        return i == 0 ? "sum" : NULL;
    }
    return NULL;
}

tg_params *tg_optim__params(const tg_optim *opt)
{
    return opt->ps;
}

int64_t tg_optim__numel(const tg_optim *opt)
{
    return opt->numel;
}

static size_t esize_of(const tg_optim *opt)
{
    return tg_params_dtype(opt->ps) == TG_F64 ? sizeof(double) : sizeof(float);
}

void *tg_optim__buf(const tg_optim *opt, int i)
{
    return (char *)opt->state + (size_t)i * (size_t)opt->numel * esize_of(opt);
}

void *tg_optim__alloc_state(const tg_optim *opt, const tg_optim_config *cfg, size_t *bytes)
{
    size_t nb = (size_t)tg_optim__nbufs(cfg), es = esize_of(opt);
    *bytes = 0;
    if (nb == 0 || opt->numel == 0)
        return NULL;
    if ((uint64_t)opt->numel > SIZE_MAX / es / nb)
        return NULL;
    *bytes = nb * (size_t)opt->numel * es;
    return malloc(*bytes);
}

void tg_optim__install(tg_optim *opt, const tg_optim_config *cfg, int64_t steps, void *block)
{
    free(opt->state);
    opt->state = block;
    opt->cfg = *cfg;
    opt->steps = steps;
}

/* Sets the initial state: zeros, except Adagrad's sum (initial_accumulator_value). */
static void init_state(tg_optim *opt)
{
    int nb = tg_optim__nbufs(&opt->cfg);
    size_t n = (size_t)opt->numel;
    if (!opt->state)
        return;
    memset(opt->state, 0, (size_t)nb * n * esize_of(opt));
    if (opt->cfg.kind == TG_ADAGRAD) {
        double v = opt->cfg.initial_accumulator_value;
        if (tg_params_dtype(opt->ps) == TG_F64) {
            double *s = opt->state;
            for (size_t i = 0; i < n; i++)
                s[i] = v;
        } else {
            float *s = opt->state;
            for (size_t i = 0; i < n; i++)
                s[i] = (float)v;
        }
    }
}

/* ---- lifetime ---------------------------------------------------------------- */

tg_optim *tg_optim_new(tg_params *ps, const tg_optim_config *cfg)
{
    if (!ps || !cfg || tg_optim_config_check(cfg, NULL, 0) != TG_OK)
        return NULL;
    tg_optim *opt = calloc(1, sizeof *opt);
    if (!opt)
        return NULL;
    opt->ps = ps;
    opt->cfg = *cfg;
    opt->nparams = tg_params_count(ps);
    opt->numel = tg_params_numel(ps);
    size_t bytes;
    opt->state = tg_optim__alloc_state(opt, cfg, &bytes);
    if (bytes && !opt->state) {
        free(opt);
        return NULL;
    }
    init_state(opt);
    return opt;
}

void tg_optim_free(tg_optim *opt)
{
    if (!opt)
        return;
    free(opt->state);
    free(opt);
}

void tg_optim_set_lr(tg_optim *opt, double lr)
{
    if (opt)
        opt->cfg.lr = lr;
}

double tg_optim_get_lr(const tg_optim *opt)
{
    return opt ? opt->cfg.lr : 0.0;
}

int64_t tg_optim_steps(const tg_optim *opt)
{
    return opt ? opt->steps : 0;
}

const tg_optim_config *tg_optim_get_config(const tg_optim *opt)
{
    return opt ? &opt->cfg : NULL;
}

/* ---- the updates ---------------------------------------------------------------
 * One inline function per kind updates one element in double: p is the parameter,
 * g its gradient, s[] its state (buffers in tg_optim__buf_name order). The scalars
 * that do not depend on the element are computed once per step into step_args.
 */
typedef struct step_args {
    double lr, neg_lr, wd;
    double momentum, one_minus_damp;        /* SGD, RMSprop                   */
    bool   nesterov, first;                 /* SGD: first = no buffer yet     */
    double beta1, one_minus_b1, beta2, one_minus_b2, eps;
    double neg_step_size, bc2_sqrt;         /* Adam(W): lr/(1-b1^t), sqrt(1-b2^t) */
    double decay;                           /* AdamW: 1 - lr*wd               */
    double alpha, one_minus_alpha;          /* RMSprop                        */
    bool   centered;
    int    grad_avg, mom_buf;               /* RMSprop: index of those buffers */
    double neg_clr;                         /* Adagrad: -lr/(1+(t-1)*lr_decay) */
} step_args;

/* SGD:  d = g + wd*p;  b = d (first step) | momentum*b + (1-dampening)*d;
         d = d + momentum*b (nesterov) | b;  p = p - lr*d                        */
static inline void sgd_elem(double *p, double g, double *s, const step_args *a)
{
    double d = g;
    if (a->wd != 0.0)
        d = d + a->wd * *p;
    if (a->momentum != 0.0) {
        s[0] = a->first ? d : s[0] * a->momentum + a->one_minus_damp * d;
        d = a->nesterov ? d + a->momentum * s[0] : s[0];
    }
    *p = *p + a->neg_lr * d;
}

/* Adam: g = g + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
         p = p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)                   */
static inline void adam_elem(double *p, double g, double *s, const step_args *a)
{
    if (a->wd != 0.0)
        g = g + a->wd * *p;
    s[0] = s[0] * a->beta1 + a->one_minus_b1 * g;
    s[1] = s[1] * a->beta2 + a->one_minus_b2 * g * g;
    double denom = sqrt(s[1]) / a->bc2_sqrt + a->eps;
    *p = *p + a->neg_step_size * s[0] / denom;
}

/* AdamW: p = p*(1 - lr*wd), then Adam's update without the L2 term.             */
static inline void adamw_elem(double *p, double g, double *s, const step_args *a)
{
    *p = *p * a->decay;
    s[0] = s[0] * a->beta1 + a->one_minus_b1 * g;
    s[1] = s[1] * a->beta2 + a->one_minus_b2 * g * g;
    double denom = sqrt(s[1]) / a->bc2_sqrt + a->eps;
    *p = *p + a->neg_step_size * s[0] / denom;
}

/* RMSprop: g = g + wd*p;  sq = alpha*sq + (1-alpha)*g*g;
            avg = sqrt(sq - ga*ga) with ga = alpha*ga + (1-alpha)*g (centered) | sqrt(sq);
            avg += eps;  b = momentum*b + g/avg, p = p - lr*b (momentum > 0) |
            p = p - lr*g/avg                                                      */
static inline void rmsprop_elem(double *p, double g, double *s, const step_args *a)
{
    if (a->wd != 0.0)
        g = g + a->wd * *p;
    s[0] = s[0] * a->alpha + a->one_minus_alpha * g * g;
    double avg;
    if (a->centered) {
        double *ga = &s[a->grad_avg];
        *ga = *ga * a->alpha + a->one_minus_alpha * g;
        avg = sqrt(s[0] + -1.0 * *ga * *ga);
    } else {
        avg = sqrt(s[0]);
    }
    avg = avg + a->eps;
    if (a->mom_buf) {
        double *b = &s[a->mom_buf];
        *b = *b * a->momentum + 1.0 * g / avg;
        *p = *p + a->neg_lr * *b;
    } else {
        *p = *p + a->neg_lr * g / avg;
    }
}

/* Adagrad: g = g + wd*p;  sum = sum + g*g;  p = p - clr*g/(sqrt(sum) + eps)
            with clr = lr/(1 + (t-1)*lr_decay)                                    */
static inline void adagrad_elem(double *p, double g, double *s, const step_args *a)
{
    if (a->wd != 0.0)
        g = g + a->wd * *p;
    s[0] = s[0] + 1.0 * g * g;
    double std = sqrt(s[0]) + a->eps;
    *p = *p + a->neg_clr * g / std;
}

/* One loop per (kind, dtype): load p, g and the state as doubles, update, store; chunks
   of TG_CHUNK elements split over threads (TG_FOR_CHUNKS). Its runtime options (decay,
   momentum, centering, which buffers exist) keep the compiler from vectorising it: the
   common plain RMSprop has its own loop below. */
#define DEFINE_UPDATE(NAME, T, ELEM)                                                   \
    static void NAME##_chunk(T *restrict p, const T *restrict g, T *restrict s0,      \
                             T *restrict s1, T *restrict s2, int64_t n,               \
                             const step_args *a)                                       \
    {                                                                                  \
        const step_args args = *a;                                                     \
        for (int64_t i = 0; i < n; i++) {                                              \
            double pv = (double)p[i];                                                  \
            double sv[TG_OPTIM_MAX_BUFS] = { s0 ? (double)s0[i] : 0.0,                 \
                                             s1 ? (double)s1[i] : 0.0,                 \
                                             s2 ? (double)s2[i] : 0.0 };               \
            ELEM(&pv, (double)g[i], sv, &args);                                        \
            p[i] = (T)pv;                                                              \
            if (s0)                                                                    \
                s0[i] = (T)sv[0];                                                      \
            if (s1)                                                                    \
                s1[i] = (T)sv[1];                                                      \
            if (s2)                                                                    \
                s2[i] = (T)sv[2];                                                      \
        }                                                                              \
    }                                                                                  \
    static void NAME(T *restrict p, const T *restrict g, T *const *st, int nb,        \
                     int64_t n, const step_args *a)                                    \
    {                                                                                  \
        T *s0 = nb > 0 ? st[0] : NULL, *s1 = nb > 1 ? st[1] : NULL;                    \
        T *s2 = nb > 2 ? st[2] : NULL;                                                 \
        TG_FOR_CHUNKS(n * 4, n, lo, len,                                               \
            NAME##_chunk(p + lo, g + lo, s0 ? s0 + lo : NULL, s1 ? s1 + lo : NULL,     \
                         s2 ? s2 + lo : NULL, len, a););                               \
    }

DEFINE_UPDATE(sgd_f32, float, sgd_elem)
DEFINE_UPDATE(sgd_f64, double, sgd_elem)
DEFINE_UPDATE(adam_f32, float, adam_elem)
DEFINE_UPDATE(adam_f64, double, adam_elem)
DEFINE_UPDATE(adamw_f32, float, adamw_elem)
DEFINE_UPDATE(adamw_f64, double, adamw_elem)
DEFINE_UPDATE(rmsprop_f32, float, rmsprop_elem)
DEFINE_UPDATE(rmsprop_f64, double, rmsprop_elem)
DEFINE_UPDATE(adagrad_f32, float, adagrad_elem)
DEFINE_UPDATE(adagrad_f64, double, adagrad_elem)

/* RMSprop without weight decay, centering or momentum (charlm's default) on floats:
   rmsprop_elem's arithmetic, in the same order, in a loop the compiler vectorises (an AVX2
   clone where the CPU has it; the build's -fno-math-errno lets it vectorise sqrt). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx2", "default")))
#endif
static void rmsprop_plain_chunk(float *restrict p, const float *restrict g,
                                float *restrict sq, int64_t n, double alpha, double oma,
                                double eps, double nlr)
{
    for (int64_t i = 0; i < n; i++) {
        double gi = (double)g[i];
        double si = (double)sq[i] * alpha + oma * gi * gi;
        double avg = sqrt(si) + eps;
        p[i] = (float)((double)p[i] + nlr * gi / avg);
        sq[i] = (float)si;
    }
}

static void rmsprop_plain_f32(float *p, const float *g, float *sq, int64_t n,
                              const step_args *a)
{
    TG_FOR_CHUNKS(n * 4, n, lo, len,
        rmsprop_plain_chunk(p + lo, g + lo, sq + lo, len, a->alpha, a->one_minus_alpha,
                            a->eps, a->neg_lr););
}

typedef void (*update_f32)(float *restrict, const float *restrict, float *const *, int,
                           int64_t, const step_args *);
typedef void (*update_f64)(double *restrict, const double *restrict, double *const *, int,
                           int64_t, const step_args *);

static const update_f32 updates_f32[] = { sgd_f32, adam_f32, adamw_f32, rmsprop_f32,
                                          adagrad_f32 };
static const update_f64 updates_f64[] = { sgd_f64, adam_f64, adamw_f64, rmsprop_f64,
                                          adagrad_f64 };

/* True when every gradient element is finite (NULL gradients count as finite). */
static bool grads_finite(tg_params *ps)
{
    int np = tg_params_count(ps);
    for (int j = 0; j < np; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        int64_t n = t->numel;
        int bad = 0;
        if (!t->grad)
            continue;
        TG_DISPATCH(t->dtype,
            const T *g = t->grad;
            /* a chunk that finds one sets the flag: the same answer in any order */
            TG_FOR_CHUNKS(n, n, lo, len,
                int found = 0;
                for (int64_t i = lo; i < lo + len; i++)
                    found |= !isfinite(g[i]);
                if (found) {
                    TG_PRAGMA(omp atomic write)
                    bad = 1;
                }););
        if (bad)
            return false;
    }
    return true;
}

static step_args make_args(const tg_optim *opt)
{
    const tg_optim_config *c = &opt->cfg;
    double t = (double)(opt->steps + 1);   /* torch increments its step before using it */
    step_args a;
    memset(&a, 0, sizeof a);
    a.lr = c->lr;
    a.neg_lr = -c->lr;
    a.wd = c->weight_decay;
    a.momentum = c->momentum;
    a.one_minus_damp = 1.0 - c->dampening;
    a.nesterov = c->nesterov;
    a.first = opt->steps == 0;
    a.beta1 = c->beta1;
    a.one_minus_b1 = 1.0 - c->beta1;
    a.beta2 = c->beta2;
    a.one_minus_b2 = 1.0 - c->beta2;
    a.eps = c->eps;
    if (c->kind == TG_ADAM || c->kind == TG_ADAMW) {
        double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
        a.neg_step_size = -(c->lr / bc1);
        a.bc2_sqrt = sqrt(bc2);
        a.decay = 1.0 - c->lr * c->weight_decay;
    }
    a.alpha = c->alpha;
    a.one_minus_alpha = 1.0 - c->alpha;
    a.centered = c->centered;
    a.grad_avg = c->centered ? 1 : 0;
    a.mom_buf = c->kind == TG_RMSPROP && c->momentum > 0.0 ? 1 + (c->centered ? 1 : 0) : 0;
    a.neg_clr = -(c->lr / (1.0 + (t - 1.0) * c->lr_decay));
    return a;
}

tg_status tg_optim_step(tg_optim *opt)
{
    if (!opt)
        return TG_ERR_NULL;
    tg_params *ps = opt->ps;
    if (tg_params_count(ps) != opt->nparams || tg_params_numel(ps) != opt->numel)
        return TG_ERR_SHAPE;
    if (!(opt->cfg.lr >= 0.0) || !isfinite(opt->cfg.lr))
        return TG_ERR_ARG;
    if (!grads_finite(ps))
        return TG_ERR_NONFINITE;

    step_args a = make_args(opt);
    int nb = tg_optim__nbufs(&opt->cfg);
    bool f64 = tg_params_dtype(ps) == TG_F64;
    int64_t off = 0;
    for (int j = 0; j < opt->nparams; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        if (t->grad) {   /* like torch, a parameter without a gradient is skipped */
            if (f64) {
                double *st[TG_OPTIM_MAX_BUFS];
                for (int k = 0; k < nb; k++)
                    st[k] = (double *)tg_optim__buf(opt, k) + off;
                updates_f64[opt->cfg.kind](t->data, t->grad, st, nb, t->numel, &a);
            } else {
                float *st[TG_OPTIM_MAX_BUFS];
                for (int k = 0; k < nb; k++)
                    st[k] = (float *)tg_optim__buf(opt, k) + off;
                if (opt->cfg.kind == TG_RMSPROP && a.wd == 0.0 && !a.centered && !a.mom_buf)
                    rmsprop_plain_f32(t->data, t->grad, st[0], t->numel, &a);
                else
                    updates_f32[opt->cfg.kind](t->data, t->grad, st, nb, t->numel, &a);
            }
        }
        off += t->numel;
    }
    opt->steps++;
    return TG_OK;
}
