/* examples/charlm/model.c: building a charlm model from its config, loading one from a
   checkpoint, and the optimizer configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "examples/charlm/charlm.h"

int model_build(const charlm_config *cfg, int V, tg_dtype dtype, tg_params **ps, tg_charlm *m,
                char *err, size_t errsize)
{
    *ps = tg_params_new(dtype);
    if (!*ps) {
        snprintf(err, errsize, "out of memory");
        return EXIT_RUNTIME;
    }
    tg_charlm_config mc = {
        .cell = cfg->cell, .vocab = V, .layers = cfg->layers, .hidden = cfg->hidden,
        .embed = cfg->embed, .dropout = cfg->dropout,
    };
    tg_init init = {.kind = cfg->init, .scale = cfg->init_scale,
                    .forget_bias_one = cfg->forget_bias_one};
    tg_rng rng;
    tg_rng_seed(&rng, cfg->seed);
    tg_status st = tg_charlm_init(m, *ps, &mc, &init, &rng);
    m->rnn.var_dropout = cfg->var_dropout;      /* the stack checks them at every step */
    m->rnn.zoneout = cfg->zoneout;
    m->rnn.weight_drop = cfg->weight_drop;
    if (st != TG_OK) {
        snprintf(err, errsize, "cannot build the model (%s %d x %d, vocabulary %d): %s",
                 cfg->cell->name, cfg->layers, cfg->hidden, V,
                 tg_status_str(st));
        tg_charlm_deinit(m);
        tg_params_free(*ps);
        *ps = NULL;
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* The number of parameters one cell of type has at input size I and hidden size H, or
   -1 when it cannot be told. Every cell's count is a polynomial
       n(I,H) = a*I*H + b*H*H + c*H + d*I + e
   (its weights are (I or H, k*H) matrices, its other parameters (k*H) or (I) vectors), so
   five cells built at tiny sizes give the coefficients without allocating the real one. */
static double cell_param_count(const tg_cell_type *type, double I, double H)
{
    static const int probe[5][2] = {{1, 1}, {2, 1}, {1, 2}, {2, 2}, {1, 3}};   /* (I, H) */
    double p[5];
    for (int i = 0; i < 5; i++) {
        tg_params *ps = tg_params_new(TG_F32);
        void *cell = calloc(1, type->size);
        tg_rng rng;
        tg_rng_seed(&rng, 1);
        tg_status st = ps && cell ? type->init(cell, ps, "probe", probe[i][0], probe[i][1],
                                               NULL, &rng)
                                  : TG_ERR_NOMEM;
        p[i] = ps ? (double)tg_params_numel(ps) : 0;
        free(cell);                     /* a cell holds pointers into ps, nothing of its own */
        tg_params_free(ps);
        if (st != TG_OK)
            return -1;
    }
    double a = (p[3] - p[2]) - (p[1] - p[0]), d = (p[1] - p[0]) - a;
    double b = ((p[4] - p[2]) - (p[2] - p[0])) / 2, c = (p[2] - p[0]) - a - 3 * b;
    double e = p[0] - a - b - c - d;
    return a * I * H + b * H * H + c * H + d * I + e;
}

/* Parameters the config describes (in double: a crafted config may overflow int64); when
   the cell's count cannot be told, the embedding's and the head's only. */
static double model_param_count(const charlm_config *cfg, int V)
{
    double H = cfg->hidden, E = cfg->embed, n = E > 0 ? V * E : 0;
    for (int l = 0; l < cfg->layers; l++) {
        double cell = cell_param_count(cfg->cell, l > 0 ? H : E > 0 ? E : V, H);
        n += cell > 0 ? cell : 0;
    }
    return n + H * V + V;
}

int meta_read(const char *path, charlm_meta *meta, char *err, size_t errsize)
{
    void *buf = NULL;
    size_t size = 0;
    char cerr[512] = "";
    tg_status st = tg_checkpoint_read_meta(path, &buf, &size, cerr, sizeof cerr);
    if (st != TG_OK) {
        snprintf(err, errsize, "%s", cerr[0] ? cerr : tg_status_str(st));
        return EXIT_RUNTIME;
    }
    char merr[400];
    int rc = meta_decode(buf, size, meta, merr, sizeof merr);
    free(buf);
    if (rc != EXIT_OK)
        snprintf(err, errsize, "%s: %s", path, merr);
    return rc;
}

int model_load(const char *path, charlm_meta *meta, tg_params **ps, tg_charlm *m, char *err,
               size_t errsize)
{
    char cerr[512] = "";
    int rc = meta_read(path, meta, err, errsize);
    if (rc != EXIT_OK)
        return rc;
    /* a file holds 4 bytes per float32 parameter: refuse metadata that describes a model
       larger than the file before allocating it (a crafted file could ask for gigabytes) */
    struct stat sb;
    double want = model_param_count(&meta->cfg, meta->V) * 4.0;
    if (stat(path, &sb) != 0 || want > (double)sb.st_size) {
        snprintf(err, errsize, "%s: its metadata describes a model of %.0f bytes but the file "
                 "has %lld: corrupt checkpoint", path, want, (long long)sb.st_size);
        meta_free(meta);
        return EXIT_RUNTIME;
    }
    rc = model_build(&meta->cfg, meta->V, TG_F32, ps, m, err, errsize);
    if (rc != EXIT_OK) {
        meta_free(meta);
        return rc;
    }
    tg_status st = tg_checkpoint_load(path, *ps, NULL, cerr, sizeof cerr);
    if (st != TG_OK) {
        snprintf(err, errsize, "%s", cerr[0] ? cerr : tg_status_str(st));
        tg_charlm_deinit(m);
        tg_params_free(*ps);
        *ps = NULL;
        meta_free(meta);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

const char *model_regularisers(const charlm_config *cfg, char *buf, size_t size)
{
    const double rate[4] = {cfg->dropout, cfg->var_dropout, cfg->zoneout, cfg->weight_drop};
    static const char *const name[4] = {"dropout", "var-dropout", "zoneout", "weight-drop"};
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < 4; i++)
        if (rate[i] > 0 && n < size)
            n += (size_t)snprintf(buf + n, size - n, ", %s %g", name[i], rate[i]);
    return buf;
}

tg_optim_config model_optim_config(const charlm_config *cfg)
{
    tg_optim_config oc = tg_optim_defaults(cfg->optim);
    oc.lr = cfg->lr;
    if (cfg->optim == TG_RMSPROP)
        oc.alpha = 0.95; /* char-rnn's decay_rate */
    return oc;
}
