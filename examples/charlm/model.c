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
    if (st != TG_OK) {
        snprintf(err, errsize, "cannot build the model (%s %d x %d, vocabulary %d): %s",
                 tg_cell_kind_name(cfg->cell), cfg->layers, cfg->hidden, V,
                 tg_status_str(st));
        tg_params_free(*ps);
        *ps = NULL;
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Parameters the config describes (in double: a crafted config may overflow int64). */
static double model_param_count(const charlm_config *cfg, int V)
{
    double H = cfg->hidden, E = cfg->embed, n = E > 0 ? V * E : 0;
    int gates = cfg->cell == TG_CELL_LSTM ? 4 : cfg->cell == TG_CELL_GRU ? 3 : 1;
    for (int l = 0; l < cfg->layers; l++) {
        double in = l > 0 ? H : E > 0 ? E : V;
        n += gates * ((H + in) * H + H);
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
        tg_params_free(*ps);
        *ps = NULL;
        meta_free(meta);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

tg_optim_config model_optim_config(const charlm_config *cfg)
{
    tg_optim_config oc = tg_optim_defaults(cfg->optim);
    oc.lr = cfg->lr;
    if (cfg->optim == TG_RMSPROP)
        oc.alpha = 0.95; /* char-rnn's decay_rate */
    return oc;
}
