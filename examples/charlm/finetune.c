/* examples/charlm/finetune.c: 'charlm train --init-from': a new run that starts from a
   checkpoint's weights, its vocabulary extended by the new text's unseen symbols. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"

int finetune_config(const charlm_opts *o, charlm_config *cfg, charlm_meta *init)
{
    char err[1024];
    int rc = meta_read(o->init_from, init, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("--init-from: %s", err);
        return rc;
    }
    const charlm_config *c = &init->cfg;
    bool clash = (o->given[OPT_CELL] && o->cfg.cell != c->cell) ||
                 (o->given[OPT_LAYERS] && o->cfg.layers != c->layers) ||
                 (o->given[OPT_HIDDEN] && o->cfg.hidden != c->hidden) ||
                 (o->given[OPT_EMBED] && o->cfg.embed != c->embed) ||
                 (o->given[OPT_VOCAB] && o->vocab != init->vocab_kind);
    if (clash) {
        errorf("--init-from: the model options (--cell, --layers, --hidden, --embed, --vocab) "
               "come from %s (%s %d x %d, embed %d) and cannot change",
               o->init_from, c->cell->name, c->layers, c->hidden, c->embed);
        meta_free(init);
        return EXIT_USAGE;
    }
    cfg->cell = c->cell;
    cfg->layers = c->layers;
    cfg->hidden = c->hidden;
    cfg->embed = c->embed;
    /* the recurrent regularisers carry over unless given: zoneout's expectation is part
       of how the model computes at evaluation */
    if (!o->given[OPT_VAR_DROPOUT])
        cfg->var_dropout = c->var_dropout;
    if (!o->given[OPT_ZONEOUT])
        cfg->zoneout = c->zoneout;
    if (!o->given[OPT_WEIGHT_DROP])
        cfg->weight_drop = c->weight_drop;
    return EXIT_OK;
}

int finetune_vocab(corpus *c, const charlm_meta *init, int64_t *added)
{
    tg_vocab old = {init->vocab_kind, init->V, init->vocab};          /* views */
    tg_text seen = {c->kind, c->vocab, c->V, 0, 0};
    tg_vocab merged;
    int32_t *map = malloc((size_t)init->V * sizeof *map);
    if (!map || tg_vocab_merge(&old, &seen, &merged, map) != TG_OK) {
        free(map);
        errorf("--init-from: %s", map ? tg_last_error() : "out of memory");
        return EXIT_RUNTIME;
    }
    free(map);
    for (int64_t i = 0; i < c->n; i++)   /* the text's ids, into the merged vocabulary */
        c->ids[i] = tg_vocab_find(&merged, c->vocab[c->ids[i]]);
    *added = merged.size - init->V;
    free(c->vocab);
    c->vocab = merged.symbols;
    c->V = merged.size;
    return EXIT_OK;
}

/* Copies src into dst, whose vocabulary-sized dims may have grown from V0 to V: along
   such a dim, the leading (size - V) entries copy straight (a layer's recurrent rows)
   and old symbol i's entry goes to map[i]; entries of new symbols keep dst's init. */
static void copy_mapped(const tg_tensor *src, tg_tensor *dst, const int32_t *map, int64_t V0)
{
    int64_t rows = src->ndim == 2 ? src->shape[0] : 1;
    int64_t cols = src->shape[src->ndim - 1];
    int64_t drows = dst->ndim == 2 ? dst->shape[0] : 1;
    int64_t dcols = dst->shape[dst->ndim - 1];
    for (int64_t r = 0; r < rows; r++) {
        int64_t dr = drows == rows || r < rows - V0 ? r : (rows - V0) + map[r - (rows - V0)];
        for (int64_t k = 0; k < cols; k++) {
            int64_t dk = dcols == cols || k < cols - V0 ? k : (cols - V0) + map[k - (cols - V0)];
            tg_tensor_set(dst, dr * dcols + dk, tg_tensor_get(src, r * cols + k));
        }
    }
}

int finetune_weights(const char *path, const corpus *c, tg_params *ps)
{
    charlm_meta meta;
    tg_params *old = NULL;
    tg_charlm m;
    char err[600];
    int rc = model_load(path, &meta, &old, &m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("--init-from: %s", err);
        return rc;
    }
    int32_t *map = malloc((size_t)meta.V * sizeof *map);
    const tg_vocab v = {c->kind, c->V, c->vocab};
    for (int i = 0; map && i < meta.V; i++)
        map[i] = tg_vocab_find(&v, meta.vocab[i]);
    for (int i = 0; map && rc == EXIT_OK && i < tg_params_count(old); i++) {
        const char *name = tg_params_name(old, i);
        tg_tensor *src = tg_params_at(old, i), *dst = tg_params_find(ps, name);
        if (!dst || dst->ndim != src->ndim) {
            errorf("--init-from: %s: parameter %s does not fit the new model", path, name);
            rc = EXIT_RUNTIME;
        } else {
            copy_mapped(src, dst, map, meta.V);
        }
    }
    if (!map) {
        errorf("out of memory");
        rc = EXIT_RUNTIME;
    }
    free(map);
    tg_params_free(old);
    meta_free(&meta);
    return rc;
}
