/* optim/optim.c: SGD, Adam, AdamW, RMSprop and Adagrad with torch.optim's (1.13) update rules. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"
#include "optim/optim_internal.h"
#include "tensor/tensor_internal.h"   /* tg_error_set, TG_DISPATCH, TG_FOR_CHUNKS */

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
 *
 * Adding an optimizer: a tg_optim_kind before TG_OPTIM_KIND_COUNT, its fields (if new)
 * in tg_optim_config and TG_OPTIM_CONFIG_FIELDS, an element update with its
 * DEFINE_UPDATES line, and one row of `optimizers` below.
 */

struct tg_optim {
    tg_params      *ps;
    tg_optim_config cfg;
    int64_t         steps;     /* updates applied so far                          */
    int             nparams;   /* tg_params_count(ps) when the optimizer was made */
    int64_t         numel;     /* tg_params_numel(ps) then                        */
    void           *state;     /* nbufs flat buffers of numel elements each, or NULL */
    bool            scheduled; /* sched (and, for PLATEAU, plateau) are in use    */
    tg_schedule     sched;
    tg_plateau_state plateau;
};

/* The config field list describes tg_optim_config exactly: the same fields at the same
   offsets and nothing else (a field missing from the list changes the size or shifts a
   later offset). */
static_assert(sizeof(tg_optim_kind) == sizeof(int), "a KIND field is stored as an int");
#define MIRROR_FIELD(field, CLASS) TG_FIELD_CTYPE_##CLASS field;
typedef struct config_mirror { TG_OPTIM_CONFIG_FIELDS(MIRROR_FIELD) } config_mirror;
#define SAME_OFFSET(field, CLASS)                                                      \
    static_assert(offsetof(config_mirror, field) == offsetof(tg_optim_config, field),  \
                  "TG_OPTIM_CONFIG_FIELDS: " #field " out of place");
TG_OPTIM_CONFIG_FIELDS(SAME_OFFSET)
static_assert(sizeof(config_mirror) == sizeof(tg_optim_config),
              "TG_OPTIM_CONFIG_FIELDS must list every field of tg_optim_config");
static_assert(TG_OPTIM_CONFIG_FLAGS <= 4, "the flags word holds at most four flags");
#undef MIRROR_FIELD
#undef SAME_OFFSET

/* ---- the updates ---------------------------------------------------------------
 * One inline function per kind updates one element in double: p is the parameter,
 * g its gradient, s[] its state (buffers in the order its descriptor lists them). The
 * scalars that do not depend on the element are computed once per step into step_args
 * by the descriptor's prepare.
 */
typedef struct step_args {
    double neg_lr, wd, eps;                 /* every kind                    */
    double momentum, one_minus_damp;        /* SGD, RMSprop                   */
    bool   nesterov, first;                 /* SGD: first = no buffer yet     */
    double beta1, one_minus_b1, beta2, one_minus_b2;
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
/* KIND_f32 and KIND_f64 from KIND_elem. */
#define DEFINE_UPDATES(KIND)                                                           \
    DEFINE_UPDATE(KIND##_f32, float, KIND##_elem)                                      \
    DEFINE_UPDATE(KIND##_f64, double, KIND##_elem)

DEFINE_UPDATES(sgd)
DEFINE_UPDATES(adam)
DEFINE_UPDATES(adamw)
DEFINE_UPDATES(rmsprop)
DEFINE_UPDATES(adagrad)

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

/* RMSprop on floats: the vectorised loop when no option needs the general one. */
static void rmsprop_fast_f32(float *restrict p, const float *restrict g, float *const *st,
                             int nb, int64_t n, const step_args *a)
{
    if (a->wd == 0.0 && !a->centered && !a->mom_buf)
        rmsprop_plain_f32(p, g, st[0], n, a);
    else
        rmsprop_f32(p, g, st, nb, n, a);
}

typedef void (*update_f32)(float *restrict, const float *restrict, float *const *, int,
                           int64_t, const step_args *);
typedef void (*update_f64)(double *restrict, const double *restrict, double *const *, int,
                           int64_t, const step_args *);

/* ---- the optimizers ------------------------------------------------------------
 * Each kind's descriptor: name, torch's defaults, the checks of its own fields (lr and
 * weight_decay are checked for every kind), the state buffers a config implies (torch's
 * names, initial values), the per-step scalars and the update loops.
 */
typedef struct buf_list {
    int         n;
    const char *name[TG_OPTIM_MAX_BUFS];
    double      init[TG_OPTIM_MAX_BUFS];
} buf_list;

typedef struct optim_desc {
    const char     *name;
    tg_optim_config defaults;
    bool (*check)(const tg_optim_config *c);        /* false: tg_error_set said why */
    void (*buffers)(const tg_optim_config *c, buf_list *b);
    void (*prepare)(step_args *a, const tg_optim_config *c, int64_t t);  /* t from 1 */
    update_f32      update_f32;
    update_f64      update_f64;
} optim_desc;

static void add_buf(buf_list *b, const char *name, double init)
{
    b->name[b->n] = name;
    b->init[b->n] = init;
    b->n++;
}

/* Field checks: true when fine, else false with the reason set, e.g.
   "adam: invalid beta2 1 (must be in [0, 1))". FIELD(f) passes a field's name and value. */
#define FIELD(f) #f, c->f
static bool nonneg(const tg_optim_config *c, const char *field, double v)
{
    if (v >= 0.0 && isfinite(v))
        return true;
    tg_error_set(TG_ERR_ARG, "%s: invalid %s %g (must be finite and >= 0)",
                 tg_optim_kind_name(c->kind), field, v);
    return false;
}

static bool unit(const tg_optim_config *c, const char *field, double v)
{
    if (v >= 0.0 && v < 1.0)
        return true;
    tg_error_set(TG_ERR_ARG, "%s: invalid %s %g (must be in [0, 1))",
                 tg_optim_kind_name(c->kind), field, v);
    return false;
}

/* SGD: momentum_buffer when momentum != 0 */
static bool sgd_check(const tg_optim_config *c)
{
    if (!nonneg(c, FIELD(momentum)))
        return false;
    if (!isfinite(c->dampening)) {
        tg_error_set(TG_ERR_ARG, "sgd: invalid dampening %g", c->dampening);
        return false;
    }
    if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0)) {
        tg_error_set(TG_ERR_ARG, "sgd: nesterov needs momentum > 0 and dampening 0 "
                     "(momentum %g, dampening %g)", c->momentum, c->dampening);
        return false;
    }
    return true;
}

static void sgd_buffers(const tg_optim_config *c, buf_list *b)
{
    if (c->momentum != 0.0)
        add_buf(b, "momentum_buffer", 0.0);
}

static void sgd_prepare(step_args *a, const tg_optim_config *c, int64_t t)
{
    a->momentum = c->momentum;
    a->one_minus_damp = 1.0 - c->dampening;
    a->nesterov = c->nesterov;
    a->first = t == 1;
}

/* Adam and AdamW: exp_avg, exp_avg_sq */
static bool adam_check(const tg_optim_config *c)
{
    return unit(c, FIELD(beta1)) && unit(c, FIELD(beta2)) && nonneg(c, FIELD(eps));
}

static void adam_buffers(const tg_optim_config *c, buf_list *b)
{
    (void)c;
    add_buf(b, "exp_avg", 0.0);
    add_buf(b, "exp_avg_sq", 0.0);
}

static void adam_prepare(step_args *a, const tg_optim_config *c, int64_t t)
{
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    a->beta1 = c->beta1;
    a->one_minus_b1 = 1.0 - c->beta1;
    a->beta2 = c->beta2;
    a->one_minus_b2 = 1.0 - c->beta2;
    a->neg_step_size = -(c->lr / bc1);
    a->bc2_sqrt = sqrt(bc2);
    a->decay = 1.0 - c->lr * c->weight_decay;
}

/* RMSprop: square_avg [, grad_avg when centered] [, momentum_buffer when momentum > 0] */
static bool rmsprop_check(const tg_optim_config *c)
{
    return nonneg(c, FIELD(alpha)) && nonneg(c, FIELD(eps)) && nonneg(c, FIELD(momentum));
}

static void rmsprop_buffers(const tg_optim_config *c, buf_list *b)
{
    add_buf(b, "square_avg", 0.0);
    if (c->centered)
        add_buf(b, "grad_avg", 0.0);
    if (c->momentum > 0.0)
        add_buf(b, "momentum_buffer", 0.0);
}

static void rmsprop_prepare(step_args *a, const tg_optim_config *c, int64_t t)
{
    (void)t;
    a->momentum = c->momentum;
    a->alpha = c->alpha;
    a->one_minus_alpha = 1.0 - c->alpha;
    a->centered = c->centered;
    a->grad_avg = c->centered ? 1 : 0;
    a->mom_buf = c->momentum > 0.0 ? 1 + (c->centered ? 1 : 0) : 0;
}

/* Adagrad: sum, starting at initial_accumulator_value */
static bool adagrad_check(const tg_optim_config *c)
{
    return nonneg(c, FIELD(lr_decay)) && nonneg(c, FIELD(initial_accumulator_value))
           && nonneg(c, FIELD(eps));
}

static void adagrad_buffers(const tg_optim_config *c, buf_list *b)
{
    add_buf(b, "sum", c->initial_accumulator_value);
}

static void adagrad_prepare(step_args *a, const tg_optim_config *c, int64_t t)
{
    a->neg_clr = -(c->lr / (1.0 + (double)(t - 1) * c->lr_decay));
}
#undef FIELD

/* beta1, beta2 and alpha carry torch's values for every kind, so that switching kind
   in a config keeps sensible settings. */
#define DEFAULTS(KIND, LR, EPS, ...)                                                    \
    { .kind = KIND, .lr = LR, .eps = EPS, .beta1 = 0.9, .beta2 = 0.999, .alpha = 0.99,  \
      __VA_ARGS__ }

static const optim_desc optimizers[] = {
    [TG_SGD] = { "sgd", DEFAULTS(TG_SGD, 1e-2, 0.0, .weight_decay = 0.0),
                 sgd_check, sgd_buffers, sgd_prepare, sgd_f32, sgd_f64 },
    [TG_ADAM] = { "adam", DEFAULTS(TG_ADAM, 1e-3, 1e-8, .weight_decay = 0.0),
                  adam_check, adam_buffers, adam_prepare, adam_f32, adam_f64 },
    [TG_ADAMW] = { "adamw", DEFAULTS(TG_ADAMW, 1e-3, 1e-8, .weight_decay = 1e-2),
                   adam_check, adam_buffers, adam_prepare, adamw_f32, adamw_f64 },
    [TG_RMSPROP] = { "rmsprop", DEFAULTS(TG_RMSPROP, 1e-2, 1e-8, .weight_decay = 0.0),
                     rmsprop_check, rmsprop_buffers, rmsprop_prepare, rmsprop_fast_f32,
                     rmsprop_f64 },
    [TG_ADAGRAD] = { "adagrad", DEFAULTS(TG_ADAGRAD, 1e-2, 1e-10, .weight_decay = 0.0),
                     adagrad_check, adagrad_buffers, adagrad_prepare, adagrad_f32,
                     adagrad_f64 },
};
static_assert(sizeof optimizers / sizeof optimizers[0] == TG_OPTIM_KIND_COUNT,
              "one descriptor per tg_optim_kind");
#undef DEFAULTS

static bool kind_valid(tg_optim_kind kind)
{
    return (int)kind >= 0 && (int)kind < TG_OPTIM_KIND_COUNT;
}

/* ---- names, defaults, validation ---------------------------------------------- */

const char *tg_optim_kind_name(tg_optim_kind kind)
{
    return kind_valid(kind) ? optimizers[kind].name : "unknown";
}

int tg_optim_kind_parse(const char *name)
{
    for (int k = 0; name && k < TG_OPTIM_KIND_COUNT; k++)
        if (strcmp(name, optimizers[k].name) == 0)
            return k;
    return -1;
}

tg_optim_config tg_optim_defaults(tg_optim_kind kind)
{
    if (kind_valid(kind))
        return optimizers[kind].defaults;
    tg_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    return c;
}

/* The checks of tg_optim_config_check, with the reason in tg_last_error only. */
static tg_status check_config(const tg_optim_config *cfg)
{
    if (!cfg)
        return tg_error_set(TG_ERR_NULL, "optimizer config is NULL");
    if (!kind_valid(cfg->kind))
        return tg_error_set(TG_ERR_ARG, "unknown optimizer kind %d", (int)cfg->kind);
    if (nonneg(cfg, "lr", cfg->lr) && nonneg(cfg, "weight_decay", cfg->weight_decay)
        && optimizers[cfg->kind].check(cfg))
        return TG_OK;
    return TG_ERR_ARG;
}

tg_status tg_optim_config_check(const tg_optim_config *cfg, char *err, size_t errsize)
{
    tg_status st = check_config(cfg);
    if (err && errsize)
        snprintf(err, errsize, "%s", st == TG_OK ? "" : tg_last_error());
    return st;
}

/* ---- state layout ------------------------------------------------------------ */

static buf_list buffers_of(const tg_optim_config *cfg)
{
    buf_list b = { 0 };
    if (kind_valid(cfg->kind))
        optimizers[cfg->kind].buffers(cfg, &b);
    return b;
}

int tg_optim_nbufs(const tg_optim_config *cfg)
{
    return buffers_of(cfg).n;
}

const char *tg_optim_buf_name(const tg_optim_config *cfg, int i)
{
    buf_list b = buffers_of(cfg);
    return i >= 0 && i < b.n ? b.name[i] : NULL;
}

tg_params *tg_optim_params(const tg_optim *opt)
{
    return opt->ps;
}

int64_t tg_optim_numel(const tg_optim *opt)
{
    return opt->numel;
}

static size_t esize_of(const tg_optim *opt)
{
    return tg_params_dtype(opt->ps) == TG_F64 ? sizeof(double) : sizeof(float);
}

void *tg_optim_buf(const tg_optim *opt, int i)
{
    return (char *)opt->state + (size_t)i * (size_t)opt->numel * esize_of(opt);
}

void *tg_optim_alloc_state(const tg_optim *opt, const tg_optim_config *cfg, size_t *bytes)
{
    size_t nb = (size_t)tg_optim_nbufs(cfg), es = esize_of(opt);
    *bytes = 0;
    if (nb == 0 || opt->numel == 0)
        return NULL;
    if ((uint64_t)opt->numel > SIZE_MAX / es / nb)
        return NULL;
    *bytes = nb * (size_t)opt->numel * es;
    return malloc(*bytes);
}

void tg_optim_install(tg_optim *opt, const tg_optim_config *cfg, int64_t steps, void *block)
{
    free(opt->state);
    opt->state = block;
    opt->cfg = *cfg;
    opt->steps = steps;
}

/* Sets every buffer to its initial value (zeros, but Adagrad's sum). */
static void init_state(tg_optim *opt)
{
    buf_list b = buffers_of(&opt->cfg);
    size_t n = (size_t)opt->numel;
    if (!opt->state)
        return;
    memset(opt->state, 0, (size_t)b.n * n * esize_of(opt));
    for (int k = 0; k < b.n; k++) {
        if (b.init[k] == 0.0)
            continue;
        if (tg_params_dtype(opt->ps) == TG_F64) {
            double *s = tg_optim_buf(opt, k);
            for (size_t i = 0; i < n; i++)
                s[i] = b.init[k];
        } else {
            float *s = tg_optim_buf(opt, k);
            for (size_t i = 0; i < n; i++)
                s[i] = (float)b.init[k];
        }
    }
}

/* ---- lifetime ---------------------------------------------------------------- */

tg_optim *tg_optim_new(tg_params *ps, const tg_optim_config *cfg)
{
    if (!ps || !cfg) {
        tg_error_set(TG_ERR_NULL, "optim_new: %s is NULL", !ps ? "params" : "config");
        return NULL;
    }
    tg_status st = check_config(cfg);
    if (st != TG_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tg_last_error());
        tg_error_set(st, "optim_new: %s", why);
        return NULL;
    }
    tg_optim *opt = calloc(1, sizeof *opt);
    if (!opt) {
        tg_error_set(TG_ERR_NOMEM, "optim_new: out of memory");
        return NULL;
    }
    opt->ps = ps;
    opt->cfg = *cfg;
    opt->nparams = tg_params_count(ps);
    opt->numel = tg_params_numel(ps);
    size_t bytes;
    opt->state = tg_optim_alloc_state(opt, cfg, &bytes);
    if (bytes && !opt->state) {
        free(opt);
        tg_error_set(TG_ERR_NOMEM, "optim_new: out of memory for %zu bytes of %s state",
                     bytes, tg_optim_kind_name(cfg->kind));
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

/* ---- schedules ----------------------------------------------------------------- */

tg_status tg_optim_set_schedule(tg_optim *opt, const tg_schedule *s)
{
    if (!opt)
        return tg_error_set(TG_ERR_NULL, "optim_set_schedule: optimizer is NULL");
    if (!s) {
        opt->scheduled = false;
        return TG_OK;
    }
    if (tg_schedule_check(s) != TG_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tg_last_error());
        return tg_error_set(TG_ERR_ARG, "optim_set_schedule: %s", why);
    }
    tg_plateau_state start = tg_plateau_start();
    tg_optim_install_schedule(opt, s, &start);
    if (s->kind == TG_SCHED_PLATEAU)
        opt->cfg.lr = s->base_lr;
    return TG_OK;
}

const tg_schedule *tg_optim_get_schedule(const tg_optim *opt)
{
    return opt && opt->scheduled ? &opt->sched : NULL;
}

tg_status tg_optim_observe(tg_optim *opt, double metric)
{
    if (!opt)
        return tg_error_set(TG_ERR_NULL, "optim_observe: optimizer is NULL");
    if (opt->scheduled && opt->sched.kind == TG_SCHED_PLATEAU)
        opt->cfg.lr = tg_plateau_observe(&opt->sched, &opt->plateau, opt->cfg.lr, metric);
    return TG_OK;
}

const tg_plateau_state *tg_optim_plateau(const tg_optim *opt)
{
    return opt->scheduled ? &opt->plateau : NULL;
}

void tg_optim_install_schedule(tg_optim *opt, const tg_schedule *s, const tg_plateau_state *st)
{
    opt->scheduled = true;
    opt->sched = *s;
    opt->plateau = *st;
}

/* ---- the step ------------------------------------------------------------------ */

/* The index of the first parameter whose gradient holds a NaN or inf, -1 when none does
   (NULL gradients count as finite). */
static int first_nonfinite_grad(tg_params *ps)
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
            return j;
    }
    return -1;
}

/* The checks that leave parameters and state untouched when they fail. */
static tg_status step_check(const tg_optim *opt)
{
    tg_params *ps = opt->ps;
    if (tg_params_count(ps) != opt->nparams || tg_params_numel(ps) != opt->numel)
        return tg_error_set(TG_ERR_SHAPE, "optim_step: parameters were added after the "
                            "optimizer was made (%d then, %d now)", opt->nparams,
                            tg_params_count(ps));
    if (!(opt->cfg.lr >= 0.0) || !isfinite(opt->cfg.lr))
        return tg_error_set(TG_ERR_ARG, "optim_step: invalid lr %g (must be finite and "
                            ">= 0)", opt->cfg.lr);
    int bad = first_nonfinite_grad(ps);
    if (bad >= 0)
        return tg_error_set(TG_ERR_NONFINITE, "optim_step: the gradient of '%s' holds NaN "
                            "or inf (nothing updated)", tg_params_name(ps, bad));
    return TG_OK;
}

tg_status tg_optim_step(tg_optim *opt)
{
    if (!opt)
        return tg_error_set(TG_ERR_NULL, "optim_step: optimizer is NULL");
    if (opt->scheduled && opt->sched.kind != TG_SCHED_PLATEAU)
        opt->cfg.lr = tg_schedule_lr(&opt->sched, opt->steps);
    tg_status st = step_check(opt);
    if (st != TG_OK)
        return st;

    const optim_desc *d = &optimizers[opt->cfg.kind];
    step_args a;
    memset(&a, 0, sizeof a);
    a.neg_lr = -opt->cfg.lr;
    a.wd = opt->cfg.weight_decay;
    a.eps = opt->cfg.eps;
    d->prepare(&a, &opt->cfg, opt->steps + 1);   /* torch counts steps from 1 */

    tg_params *ps = opt->ps;
    int nb = tg_optim_nbufs(&opt->cfg);
    bool f64 = tg_params_dtype(ps) == TG_F64;
    int64_t off = 0;
    for (int j = 0; j < opt->nparams; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        if (t->grad) {   /* like torch, a parameter without a gradient is skipped */
            if (f64) {
                double *st64[TG_OPTIM_MAX_BUFS];
                for (int k = 0; k < nb; k++)
                    st64[k] = (double *)tg_optim_buf(opt, k) + off;
                d->update_f64(t->data, t->grad, st64, nb, t->numel, &a);
            } else {
                float *st32[TG_OPTIM_MAX_BUFS];
                for (int k = 0; k < nb; k++)
                    st32[k] = (float *)tg_optim_buf(opt, k) + off;
                d->update_f32(t->data, t->grad, st32, nb, t->numel, &a);
            }
        }
        off += t->numel;
    }
    opt->steps++;
    return TG_OK;
}
