/* examples/charlm/train.c: 'charlm train': truncated BPTT over char-rnn batches, periodic
   validation, checkpoints with exact resume, logs, plots, signals and the summary line. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/charlm/charlm.h"
#include "examples/charlm/dist.h"

#define SUMMARY_WINDOW 20 /* the summary's loss is the mean of this many last steps */

static volatile sig_atomic_t stop_signal = 0;

/* Records the signal and restores the default action, so a second one ends the process. */
static void on_signal(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL);
}

typedef struct trainer {
    const charlm_opts *o;
    charlm_config cfg;
    corpus data;
    int64_t ntrain, nval;
    tg_batcher bt;           /* the streams; bt.cursor is the next window           */
    tg_params *ps;
    tg_charlm m;
    tg_optim *opt;
    tg_stack_state *state;   /* the carried (detached) hidden state, (B,H) per layer */
    tg_tape *tape;
    tg_rng rng;              /* dropout                                             */
    tg_schedule sched;
    int64_t step;            /* optimizer steps taken                               */
    int32_t *inputs, *targets;
    float *loss;             /* loss of steps 1..n_loss                             */
    int64_t n_loss, cap_loss;
    int64_t *val_step;       /* periodic validation results                         */
    double *val_loss;
    int64_t n_val, cap_val;
    FILE *log;
    progress prog;
    double eval_s;           /* duration of the last validation (0: none yet)        */
    charlm_meta meta;        /* the --resume or --init-from checkpoint's metadata     */
    int64_t vocab_added;     /* --init-from: symbols the checkpoint had not seen      */
    double best_val;         /* lowest validation loss so far (--save-best, --patience) */
    int64_t since_best;      /* validations since it                                  */
    bool out_of_patience;    /* stopped by --patience                                 */
    double t_start;          /* when the command started (now_s)                     */
    double train_time;       /* seconds spent in steps, validation excluded           */
    int64_t first_step;      /* t->step when this run started                         */
    int64_t val_at;          /* step of the last validation (-1: none)                */
    double val_last;         /* its loss                                              */
    bool time_up;            /* stopped to end within --time-limit                    */
    bool handlers;           /* SIGINT/SIGTERM handlers installed; old ones below     */
    struct sigaction old_int, old_term;
} trainer;

/* ---- history ---------------------------------------------------------------------- */
static bool push_loss(trainer *t, float v)
{
    if (t->n_loss == t->cap_loss) {
        int64_t cap = t->cap_loss ? 2 * t->cap_loss : 1024;
        float *nb = realloc(t->loss, (size_t)cap * sizeof *nb);
        if (!nb)
            return false;
        t->loss = nb;
        t->cap_loss = cap;
    }
    t->loss[t->n_loss++] = v;
    return true;
}

static bool push_val(trainer *t, int64_t step, double v)
{
    if (t->n_val == t->cap_val) {
        int64_t cap = t->cap_val ? 2 * t->cap_val : 64;
        int64_t *ns = realloc(t->val_step, (size_t)cap * sizeof *ns);
        if (!ns)
            return false;
        t->val_step = ns;
        double *nv = realloc(t->val_loss, (size_t)cap * sizeof *nv);
        if (!nv)
            return false;
        t->val_loss = nv;
        t->cap_val = cap;
    }
    t->val_step[t->n_val] = step;
    t->val_loss[t->n_val] = v;
    t->n_val++;
    return true;
}

/* ---- checkpoints -------------------------------------------------------------------- */
static int save_checkpoint(trainer *t, const char *path)
{
    charlm_meta meta = {0};
    meta.cfg = t->cfg;
    meta.data_bytes = t->data.bytes;
    meta.data_crc = t->data.crc;
    meta.V = t->data.V;
    meta.vocab_kind = t->data.kind;
    meta.vocab = t->data.vocab;
    meta.step = t->step;
    meta.cursor = t->bt.cursor;
    meta.rng = t->rng;
    meta.state_layers = t->cfg.layers;
    meta.state_hidden = t->cfg.hidden;
    meta.state_batch = t->cfg.batch;
    meta.state_n = t->cfg.cell->nstate;
    size_t ns = (size_t)t->cfg.batch * (size_t)t->cfg.hidden * (size_t)t->cfg.layers;
    bool nomem = false;
    for (int k = 0; k < meta.state_n; k++)
        nomem |= !(meta.state[k] = malloc(ns * sizeof(float)));
    /* every rank's rows of the state go to rank 0, which alone writes */
    int grc = nomem ? EXIT_RUNTIME
                    : dist_gather_state(t->ps, t->state, t->cfg.batch, t->cfg.hidden,
                                        meta.state);
    if (nomem)
        errorf("out of memory saving '%s'", path);
    if (grc != EXIT_OK || dist_rank() != 0) {
        for (int k = 0; k < meta.state_n; k++)
            free(meta.state[k]);
        return grc;
    }
    meta.n_loss = t->n_loss;
    meta.loss = t->loss;
    meta.n_val = t->n_val;
    meta.val_step = t->val_step;
    meta.val_loss = t->val_loss;
    unsigned char *buf = NULL;
    size_t size = 0;
    int rc = meta_encode(&meta, &buf, &size);
    for (int k = 0; k < meta.state_n; k++)
        free(meta.state[k]);
    if (rc != EXIT_OK) {
        errorf("out of memory saving '%s'", path);
        return rc;
    }
    char err[512] = "";
    tg_status st = tg_checkpoint_save(path, t->ps, t->opt, buf, size, err, sizeof err);
    free(buf);
    if (st != TG_OK) {
        errorf("%s", err[0] ? err : tg_status_str(st));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Model and data options given with --resume must agree with the checkpoint. */
static int check_resume_options(const charlm_opts *o, const charlm_config *saved)
{
    const charlm_config *c = &o->cfg;
    struct {
        opt_id id;
        const char *name;
        bool same;
        double mine, theirs;
    } checks[] = {
        {OPT_CELL, "cell", c->cell == saved->cell, 0, 0},
        {OPT_LAYERS, "layers", c->layers == saved->layers, c->layers, saved->layers},
        {OPT_HIDDEN, "hidden", c->hidden == saved->hidden, c->hidden, saved->hidden},
        {OPT_EMBED, "embed", c->embed == saved->embed, c->embed, saved->embed},
        {OPT_DROPOUT, "dropout", c->dropout == saved->dropout, c->dropout, saved->dropout},
        {OPT_VAR_DROPOUT, "var-dropout", c->var_dropout == saved->var_dropout, c->var_dropout,
         saved->var_dropout},
        {OPT_ZONEOUT, "zoneout", c->zoneout == saved->zoneout, c->zoneout, saved->zoneout},
        {OPT_WEIGHT_DROP, "weight-drop", c->weight_drop == saved->weight_drop, c->weight_drop,
         saved->weight_drop},
        {OPT_INIT, "init", c->init == saved->init, c->init,
         saved->init},
        {OPT_INIT_SCALE, "init-scale", c->init_scale == saved->init_scale, c->init_scale,
         saved->init_scale},
        {OPT_FORGET_BIAS, "forget-bias-one", c->forget_bias_one == saved->forget_bias_one,
         c->forget_bias_one, saved->forget_bias_one},
        {OPT_SEQ, "seq", c->seq == saved->seq, c->seq, saved->seq},
        {OPT_BATCH, "batch", c->batch == saved->batch, c->batch, saved->batch},
        {OPT_OPTIM, "optim", c->optim == saved->optim, c->optim, saved->optim},
        {OPT_VAL_FRAC, "val-frac", c->val_frac == saved->val_frac, c->val_frac,
         saved->val_frac},
        {OPT_SEED, "seed", c->seed == saved->seed, (double)c->seed, (double)saved->seed},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (o->given[checks[i].id] && !checks[i].same) {
            static const char *const inits[] = {"torch", "uniform", "xavier", "orthogonal"};
            const char *what = checks[i].id == OPT_CELL ? saved->cell->name
                             : checks[i].id == OPT_OPTIM ? tg_optim_kind_name(saved->optim)
                             : checks[i].id != OPT_INIT  ? NULL
                                                         : inits[saved->init % 4];
            char theirs[64];
            if (what)
                snprintf(theirs, sizeof theirs, "%s", what);
            else
                snprintf(theirs, sizeof theirs, "%g", checks[i].theirs);
            errorf("--%s differs from the checkpoint's (%s); model, batch and data options "
                   "cannot change when resuming",
                   checks[i].name, theirs);
            return EXIT_USAGE;
        }
    }
    return EXIT_OK;
}

/* Reads the resume checkpoint's metadata into meta and the config into t->cfg. */
static int resume_config(trainer *t, charlm_meta *meta)
{
    const charlm_opts *o = t->o;
    char err[1024];
    int rc = meta_read(o->resume, meta, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("--resume: %s", err);
        return rc;
    }
    rc = check_resume_options(o, &meta->cfg);
    if (rc != EXIT_OK) {
        meta_free(meta);
        return rc;
    }
    t->cfg = meta->cfg;
    /* the optimisation schedule may be changed on purpose */
    if (o->given[OPT_LR])
        t->cfg.lr = o->cfg.lr;
    if (o->given[OPT_CLIP])
        t->cfg.clip = o->cfg.clip;
    if (o->given[OPT_CLIP_VALUE])
        t->cfg.clip_value = o->cfg.clip_value;
    if (o->given[OPT_LR_DECAY])
        t->cfg.lr_decay = o->cfg.lr_decay;
    if (o->given[OPT_LR_DECAY_EVERY])
        t->cfg.lr_decay_every = o->cfg.lr_decay_every;
    return EXIT_OK;
}

/* Restores the training state of meta (after the model and optimizer exist). */
static int resume_state(trainer *t, charlm_meta *meta)
{
    const corpus *d = &t->data;
    if (meta->data_bytes != d->bytes || meta->data_crc != d->crc || meta->V != d->V ||
        meta->vocab_kind != d->kind ||
        memcmp(meta->vocab, d->vocab, (size_t)d->V * sizeof *d->vocab) != 0) {
        errorf("--resume: %s was trained on other data (%llu bytes, CRC %08x) than %s "
               "(%llu bytes, CRC %08x)",
               t->o->resume, (unsigned long long)meta->data_bytes, (unsigned)meta->data_crc,
               t->o->data, (unsigned long long)d->bytes, (unsigned)d->crc);
        return EXIT_RUNTIME;
    }
    if (meta->cursor >= t->bt.windows) {
        errorf("--resume: %s: data cursor %lld is out of range (%lld windows)", t->o->resume,
               (long long)meta->cursor, (long long)t->bt.windows);
        return EXIT_RUNTIME;
    }
    char err[512] = "";
    tg_status st = tg_checkpoint_load(t->o->resume, t->ps, t->opt, err, sizeof err);
    if (st != TG_OK) {
        errorf("--resume: %s", err[0] ? err : tg_status_str(st));
        return EXIT_RUNTIME;
    }
    int64_t per = (int64_t)t->cfg.batch * t->cfg.hidden;
    int64_t off = dist_first_row() * t->cfg.hidden, cnt = dist_rows() * t->cfg.hidden;
    for (int l = 0; l < t->cfg.layers; l++)
        for (int k = 0; k < meta->state_n; k++)
            memcpy(t->state->tensors[l][k]->data, meta->state[k] + l * per + off,
                   (size_t)cnt * sizeof(float));
    t->step = meta->step;
    t->bt.cursor = meta->cursor;
    t->rng = meta->rng;
    for (int64_t i = 0; i < meta->n_loss; i++)
        if (!push_loss(t, meta->loss[i]))
            goto nomem;
    for (int64_t i = 0; i < meta->n_val; i++)
        if (!push_val(t, meta->val_step[i], meta->val_loss[i]))
            goto nomem;
    return EXIT_OK;
nomem:
    errorf("out of memory");
    return EXIT_RUNTIME;
}

/* Fails early (before hours of training) when path's directory cannot be written. */
static int check_writable(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK) != 0) {
        errorf("--save %s: cannot write to directory '%s': %s", path, dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* ---- logging -------------------------------------------------------------------------- */
static int open_log(trainer *t)
{
    const char *path = t->o->log;
    bool fresh = true;
    if (t->o->resume) {
        /* continue the log: keep its header and the rows up to the resumed step (a run
           that went on past the checkpoint left rows that are about to be redone) */
        FILE *in = fopen(path, "r");
        if (in) {
            char *kept = NULL;
            size_t kept_n = 0, cap = 0;
            char line[512];
            bool header = false;
            while (fgets(line, sizeof line, in)) {
                bool keep = false;
                if (!header) {
                    keep = header = strncmp(line, "step,", 5) == 0;
                } else {
                    char *end;
                    long long s = strtoll(line, &end, 10);
                    keep = end != line && *end == ',' && s <= t->step;
                }
                size_t len = strlen(line);
                if (!keep || len == 0 || line[len - 1] != '\n')
                    continue;
                if (kept_n + len + 1 > cap) {
                    cap = 2 * (kept_n + len + 1);
                    char *nb = realloc(kept, cap);
                    if (!nb) {
                        free(kept);
                        fclose(in);
                        errorf("out of memory reading '%s'", path);
                        return EXIT_RUNTIME;
                    }
                    kept = nb;
                }
                memcpy(kept + kept_n, line, len);
                kept_n += len;
            }
            fclose(in);
            if (header) {
                t->log = fopen(path, "w");
                if (t->log) {
                    fwrite(kept, 1, kept_n, t->log);
                    fresh = false;
                }
            }
            free(kept);
        }
    }
    if (fresh)
        t->log = fopen(path, "w");
    if (!t->log) {
        errorf("cannot write '%s': %s", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (fresh)
        fprintf(t->log, "step,loss,val_loss,lr,grad_norm,tokens_per_s\n");
    return EXIT_OK;
}

static double recent_loss(const trainer *t)
{
    if (t->n_loss == 0)
        return NAN;
    int64_t k = t->n_loss < SUMMARY_WINDOW ? t->n_loss : SUMMARY_WINDOW;
    double s = 0;
    for (int64_t i = t->n_loss - k; i < t->n_loss; i++)
        s += t->loss[i];
    return s / (double)k;
}

static int validate(trainer *t, double *loss)
{
    char err[512];
    int64_t chars;
    double t0 = now_s();
    int rc = eval_split(&t->m, t->data.ids + t->ntrain, t->nval, t->cfg.seq, t->o->val_stateful,
                        loss, &chars, err, sizeof err);
    t->eval_s = now_s() - t0;
    if (rc != EXIT_OK)
        errorf("%s", err);
    return rc;
}

/* Seconds the final validation will probably take: the last one's duration, else an
   estimate from the training speed (a forward pass costs about a third of a step). */
static double eval_reserve(const trainer *t, double tokens_per_s)
{
    if (t->nval == 0)
        return 0.0;
    if (t->eval_s > 0)
        return t->eval_s;
    return tokens_per_s > 0 ? (double)t->nval / tokens_per_s / 3.0 : 0.0;
}

static int write_plot(trainer *t, int64_t final_step, double final_val)
{
    /* the periodic points, plus the final one when it is not among them */
    int64_t n = t->n_val;
    bool extra = isfinite(final_val) && (n == 0 || t->val_step[n - 1] != final_step);
    if (extra && !push_val(t, final_step, final_val)) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    char title[160], err[512];
    snprintf(title, sizeof title, "charlm: %s %d x %d, seq %d, batch %d, %s lr %g",
             t->cfg.cell->name, t->cfg.layers, t->cfg.hidden, t->cfg.seq,
             t->cfg.batch, tg_optim_kind_name(t->cfg.optim), t->cfg.lr);
    int rc = plot_write_svg(t->o->plot, t->loss, t->n_loss, 1, t->val_step, t->val_loss,
                            t->n_val, title, err, sizeof err);
    if (extra)
        t->n_val--;
    if (rc != EXIT_OK)
        errorf("%s", err);
    return rc;
}

static void trainer_free(trainer *t)
{
    if (t->log)
        fclose(t->log);
    tg_tape_free(t->tape);
    tg_stack_state_free(t->state);
    tg_optim_free(t->opt);
    tg_charlm_deinit(&t->m);
    tg_params_free(t->ps);
    corpus_free(&t->data);
    free(t->inputs);
    free(t->targets);
    free(t->loss);
    free(t->val_step);
    free(t->val_loss);
}

static void fmt_count(int64_t n, char *buf, size_t size)
{
    if (n >= 10000000)
        snprintf(buf, size, "%.1fM", (double)n / 1e6);
    else if (n >= 10000)
        snprintf(buf, size, "%.1fk", (double)n / 1e3);
    else
        snprintf(buf, size, "%lld", (long long)n);
}

/* ---- set-up ------------------------------------------------------------------------ */
/* Loads --data and splits it into training streams and the validation tail. */
static int load_data(trainer *t)
{
    const charlm_opts *o = t->o;
    char err[600];
    tg_vocab_kind kind = o->resume || o->init_from ? t->meta.vocab_kind : o->vocab;
    int rc = corpus_load_as(o->data, kind, NULL, 0, TG_UNKNOWN_REFUSE, &t->data, err,
                            sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    if (o->init_from && (rc = finetune_vocab(&t->data, &t->meta, &t->vocab_added)) != EXIT_OK)
        return rc;
    t->nval = corpus_val_count(t->data.n, t->cfg.val_frac);
    t->ntrain = t->data.n - t->nval;
    if (tg_batcher_init(&t->bt, t->data.ids, t->ntrain, t->cfg.batch, t->cfg.seq) != TG_OK) {
        errorf("%s is too short: %lld training characters cannot fill %d streams of %d + 1 "
               "(need at least %lld; try a smaller --batch or --seq)",
               o->data, (long long)t->ntrain, t->cfg.batch, t->cfg.seq,
               (long long)t->cfg.batch * (t->cfg.seq + 1));
        return EXIT_RUNTIME;
    }
    if (t->nval > 0 && t->nval < (int64_t)t->cfg.seq + 1) {
        errorf("%s is too short: the validation split has %lld characters, fewer than one "
               "window of %d + 1 (use a larger --val-frac, or 0 for none)",
               o->data, (long long)t->nval, t->cfg.seq);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Builds the model, the optimizer, this rank's carried state, the tape and the batch
   buffers; restores a --resume checkpoint into them. */
/* --lr-schedule cosine or plateau: the optimizer runs the schedule and checkpoints keep
   it. A resumed run keeps the checkpoint's unless schedule options are given again. */
static int attach_schedule(trainer *t)
{
    const charlm_opts *o = t->o;
    bool given = o->given[OPT_LR_SCHEDULE] || o->given[OPT_WARMUP] || o->given[OPT_MIN_LR]
                 || o->given[OPT_PLATEAU_FACTOR] || o->given[OPT_PLATEAU_PATIENCE];
    if (o->resume && !given)
        return EXIT_OK;
    if (o->lr_schedule == TG_SCHED_PLATEAU && dist_size() > 1) {
        errorf("--lr-schedule plateau needs the validation loss, which only rank 0 computes; "
               "use step or cosine across ranks");
        return EXIT_USAGE;
    }
    tg_schedule s = tg_schedule_defaults(o->lr_schedule, t->cfg.lr);
    s.warmup_steps = o->warmup;
    s.warmup_start = 0.1;
    if (o->lr_schedule == TG_SCHED_COSINE)
        s.total_steps = o->steps;
    s.min_lr = o->min_lr;
    s.factor = o->plateau_factor;
    s.patience = o->plateau_patience;
    if (tg_optim_set_schedule(t->opt, o->lr_schedule == TG_SCHED_STEP ? NULL : &s) != TG_OK) {
        errorf("--lr-schedule: %s", tg_last_error());
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The lr of the step about to be taken: the optimizer's schedule if it has one, else the
   --lr-decay step schedule. */
static double next_lr(const trainer *t)
{
    const tg_schedule *s = tg_optim_get_schedule(t->opt);
    if (!s)
        return tg_schedule_lr(&t->sched, t->step);
    return s->kind == TG_SCHED_PLATEAU ? tg_optim_get_lr(t->opt) : tg_schedule_lr(s, t->step);
}

static int build_model(trainer *t)
{
    char err[600];
    int rc = model_build(&t->cfg, t->data.V, TG_F32, &t->ps, &t->m, err, sizeof err);
    if (rc != EXIT_OK) {
        errorf("%s", err);
        return rc;
    }
    if (t->o->init_from && (rc = finetune_weights(t->o->init_from, &t->data, t->ps)) != EXIT_OK)
        return rc;
    tg_optim_config oc = model_optim_config(&t->cfg);
    t->opt = tg_optim_new(t->ps, &oc);
    if (!t->opt) {
        errorf("cannot set up the optimizer: %s", tg_last_error());
        return EXIT_RUNTIME;
    }
    if ((rc = dist_set_batch(t->cfg.batch, t->o->quiet)) != EXIT_OK)
        return rc;
    if (dist_rank() != 0)
        t->nval = 0;        /* rank 0 alone validates */
    t->state = tg_stack_state_new(&t->m.rnn, TG_F32, dist_rows());    /* this rank's rows */
    t->tape = tg_tape_new();
    t->inputs = malloc((size_t)t->cfg.batch * (size_t)t->cfg.seq * sizeof *t->inputs);
    t->targets = malloc((size_t)t->cfg.batch * (size_t)t->cfg.seq * sizeof *t->targets);
    if (!t->opt || !t->state || !t->tape || !t->inputs || !t->targets) {
        errorf("cannot set up training (out of memory or invalid optimizer settings)");
        return EXIT_RUNTIME;
    }
    tg_rng_seed(&t->rng, t->cfg.seed ^ 0x9E3779B97F4A7C15ull);
    if (t->o->resume && (rc = resume_state(t, &t->meta)) != EXIT_OK)
        return rc;
    if ((rc = attach_schedule(t)) != EXIT_OK)
        return rc;
    t->sched = (tg_schedule){.kind = TG_SCHED_STEP, .base_lr = t->cfg.lr,
                             .gamma = t->cfg.lr_decay,
                             .step_size = t->cfg.lr_decay_every > 0 ? t->cfg.lr_decay_every
                                                                    : t->bt.windows};
    return EXIT_OK;
}

/* The lines that open a run: model, data, training plan. */
static void print_plan(trainer *t)
{
    const charlm_opts *o = t->o;
    char nparams[32], reg[128];
    fmt_count(tg_params_numel(t->ps), nparams, sizeof nparams);
    progress_printf(&t->prog, "model: %s %d x %d, vocabulary %d (%s input), %s parameters%s\n",
                    t->cfg.cell->name, t->cfg.layers, t->cfg.hidden, t->data.V,
                    t->cfg.embed ? "embedded" : "one-hot", nparams,
                    model_regularisers(&t->cfg, reg, sizeof reg));
    progress_printf(&t->prog, "data: %s: %lld characters (%lld bytes), %lld for training, "
                              "%lld for validation\n",
                    o->data, (long long)t->data.n, (long long)t->data.bytes,
                    (long long)t->ntrain, (long long)t->nval);
    if (t->data.replaced)
        progress_printf(&t->prog, "data: %lld invalid UTF-8 sequences read as U+FFFD\n",
                        (long long)t->data.replaced);
    progress_printf(&t->prog, "training: %d streams x %d characters, %lld windows per epoch, "
                              "%s lr %g, clip %g, %d thread%s\n",
                    t->cfg.batch, t->cfg.seq, (long long)t->bt.windows,
                    tg_optim_kind_name(t->cfg.optim), t->cfg.lr, t->cfg.clip,
                    tg_get_num_threads(), tg_get_num_threads() == 1 ? "" : "s");
    if (o->resume)
        progress_printf(&t->prog, "resumed from %s at step %lld\n", o->resume,
                        (long long)t->step);
    if (o->init_from)
        progress_printf(&t->prog, "initialised from %s (%d symbols, %lld of them new)\n",
                        o->init_from, t->data.V, (long long)t->vocab_added);
}

/* SIGINT/SIGTERM finish the current step; with several ranks the signal is recorded and
   every rank stops after the same step. */
static void install_signal_handlers(trainer *t)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dist_size() > 1 ? dist_on_signal : on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &t->old_int);
    sigaction(SIGTERM, &sa, &t->old_term);
    t->handlers = true;
}

static int train_setup(trainer *t)
{
    const charlm_opts *o = t->o;
    int rc;
    if (o->resume && (rc = resume_config(t, &t->meta)) != EXIT_OK)
        return rc;
    if (o->init_from && (rc = finetune_config(o, &t->cfg, &t->meta)) != EXIT_OK)
        return rc;
    if (o->save_best && dist_rank() == 0 && (rc = check_writable(o->save_best)) != EXIT_OK)
        return rc;
    if (o->save && dist_rank() == 0 && (rc = check_writable(o->save)) != EXIT_OK)
        return rc;
    progress_init(&t->prog, o->quiet, o->print_every);
    if ((rc = load_data(t)) != EXIT_OK || (rc = build_model(t)) != EXIT_OK)
        return rc;
    if (o->log && (rc = open_log(t)) != EXIT_OK)
        return rc;
    print_plan(t);
    install_signal_handlers(t);
    t->first_step = t->step;
    t->val_at = -1;
    t->val_last = NAN;
    t->best_val = INFINITY;
    for (int64_t i = 0; i < t->n_val; i++)   /* a resumed run's history counts */
        t->best_val = fmin(t->best_val, t->val_loss[i]);
    return EXIT_OK;
}

/* ---- one step ------------------------------------------------------------------------ */
/* Forward and backward of window t->bt.cursor on this rank's rows; *loss gets the loss. */
static int forward_backward(trainer *t, int64_t step, double *loss)
{
    const int64_t T = t->cfg.seq;
    const int64_t r0 = dist_first_row();
    tg_batcher_fill(&t->bt, t->inputs, t->targets);
    tg_tape_reset(t->tape);
    tg_tensor *lt = tg_charlm_loss(t->tape, &t->m, t->inputs + r0 * T, t->targets + r0 * T,
                                   dist_rows(), T, t->state, true,
                                   dist_dropout_rng(&t->rng, t->cfg.seed, step));
    if (!lt) {
        errorf("step %lld: %s", (long long)step, tg_tape_errmsg(t->tape));
        return EXIT_RUNTIME;
    }
    *loss = tg_tensor_get(lt, 0);
    if (!isfinite(*loss)) {
        progress_end(&t->prog);
        errorf("step %lld: the loss is %s; stopping without saving (the last checkpoint "
               "written, if any, is kept)", (long long)step, isnan(*loss) ? "NaN" : "infinite");
        return EXIT_RUNTIME;
    }
    tg_params_zero_grad(t->ps);
    tg_status st = tg_backward(t->tape, lt);
    if (st != TG_OK) {
        errorf("step %lld: backward failed: %s", (long long)step,
               tg_tape_errmsg(t->tape)[0] ? tg_tape_errmsg(t->tape) : tg_status_str(st));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Clips the gradients and takes the optimizer step at rate lr; *gnorm gets the norm. */
static int update(trainer *t, int64_t step, double lr, double *gnorm)
{
    *gnorm = tg_clip_grad_norm(t->ps, t->cfg.clip > 0 ? t->cfg.clip : INFINITY);
    if (!isfinite(*gnorm)) {
        progress_end(&t->prog);
        errorf("step %lld: the gradient norm is %s; stopping without saving (the last "
               "checkpoint written, if any, is kept)",
               (long long)step, isnan(*gnorm) ? "NaN" : "infinite");
        return EXIT_RUNTIME;
    }
    if (t->cfg.clip_value > 0)
        tg_clip_grad_value(t->ps, t->cfg.clip_value);
    tg_optim_set_lr(t->opt, lr);
    tg_status st = tg_optim_step(t->opt);
    if (st != TG_OK) {
        errorf("step %lld: optimizer step failed: %s", (long long)step, tg_status_str(st));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Tokens per second of the steps taken so far in this run. */
static double train_speed(const trainer *t)
{
    int64_t steps = t->step - t->first_step;
    return t->train_time > 0
               ? (double)(steps * (int64_t)t->cfg.batch * t->cfg.seq) / t->train_time
               : 0.0;
}

/* One optimizer step: forward, backward, the exchange between ranks (which also agrees on
   stopping: signals, and rank 0's time verdict from the previous steps' speed), clipping,
   the update, the next window. *out_time_up: stop for --time-limit after this step. */
static int train_step(trainer *t, double *loss, double *gnorm, double *lr, bool *out_time_up)
{
    const charlm_opts *o = t->o;
    double t0 = now_s();
    int64_t step = t->step + 1;   /* 1-based number of the step being taken */
    *lr = next_lr(t);
    int rc = forward_backward(t, step, loss);
    if (rc != EXIT_OK)
        return rc;
    /* stop early enough for the final validation to end within the limit */
    bool late = o->time_limit > 0 &&
                now_s() - t->t_start + eval_reserve(t, train_speed(t)) >= o->time_limit;
    int sig = 0;
    if (dist_step(t->ps, loss, late, &sig, out_time_up) != EXIT_OK)
        return EXIT_RUNTIME;
    if (sig)
        stop_signal = sig;
    if ((rc = update(t, step, *lr, gnorm)) != EXIT_OK)
        return rc;
    t->step = step;
    tg_batcher_advance(&t->bt, t->state);   /* a new epoch zeroes the carried state */
    if (!push_loss(t, (float)*loss)) {
        errorf("out of memory");
        return EXIT_RUNTIME;
    }
    t->train_time += now_s() - t0;
    return EXIT_OK;
}

/* ---- validate, log, save ---------------------------------------------------------------- */
/* Validates and records the result; prints the val_loss line. */
static int validate_and_record(trainer *t, double *val)
{
    int rc = validate(t, val);
    if (rc != EXIT_OK)
        return rc;
    t->val_at = t->step;
    t->val_last = *val;
    progress_printf(&t->prog, "step %lld: val_loss %.4f (%.4f bits/char)\n",
                    (long long)t->step, *val, *val / log(2.0));
    return EXIT_OK;
}

/* --save-best and --patience after a validation of loss val. */
static int track_best(trainer *t, double val)
{
    const charlm_opts *o = t->o;
    if (val < t->best_val) {
        t->best_val = val;
        t->since_best = 0;
        if (o->save_best) {
            int rc = save_checkpoint(t, o->save_best);
            if (rc != EXIT_OK)
                return rc;
            progress_printf(&t->prog, "saved %s (best so far, step %lld)\n", o->save_best,
                            (long long)t->step);
        }
    } else if (o->patience > 0 && ++t->since_best >= o->patience) {
        t->out_of_patience = true;
    }
    return EXIT_OK;
}

/* After a step: periodic validation, the log row, progress and the periodic checkpoint. */
static int after_step(trainer *t, double loss, double gnorm, double lr)
{
    const charlm_opts *o = t->o;
    int64_t step = t->step;
    double tok_s = train_speed(t);
    double val = NAN;
    int rc;
    if (o->eval_every > 0 && step % o->eval_every == 0 && t->nval > 0) {
        if ((rc = validate_and_record(t, &val)) != EXIT_OK)
            return rc;
        if (!push_val(t, step, val)) {
            errorf("out of memory");
            return EXIT_RUNTIME;
        }
        if ((rc = track_best(t, val)) != EXIT_OK)
            return rc;
        tg_optim_observe(t->opt, val);   /* --lr-schedule plateau: periodic validations */
    }
    if (t->log) {
        fprintf(t->log, "%lld,%.6f,", (long long)step, loss);
        if (isfinite(val))
            fprintf(t->log, "%.6f", val);
        fprintf(t->log, ",%.6g,%.6f,%.1f\n", lr, gnorm, tok_s);
    }
    double elapsed = now_s() - t->t_start;
    double per_step = t->train_time / (double)(step - t->first_step);
    double eta = per_step * (double)(o->steps - step);
    if (o->time_limit > 0 && o->time_limit - elapsed < eta)
        eta = o->time_limit - elapsed;
    progress_step(&t->prog, step, o->steps, loss, tok_s, eta, lr);
    if (o->save_every > 0 && step % o->save_every == 0 && step < o->steps)
        return save_checkpoint(t, o->save);
    return EXIT_OK;
}

static int train_loop(trainer *t)
{
    while (t->step < t->o->steps && !stop_signal) {
        double loss, gnorm, lr;
        bool time_up = false;
        int rc = train_step(t, &loss, &gnorm, &lr, &time_up);
        if (rc == EXIT_OK)
            rc = after_step(t, loss, gnorm, lr);
        if (rc != EXIT_OK)
            return rc;
        if (time_up) {
            t->time_up = true;
            break;
        }
        if (t->out_of_patience)
            break;
    }
    return EXIT_OK;
}

/* ---- the end of a run ------------------------------------------------------------------- */
/* After the loop: says why it stopped, validates a last time, saves, plots and prints the
   summary line. */
static int train_finish(trainer *t)
{
    const charlm_opts *o = t->o;
    int rc;
    bool interrupted = stop_signal != 0;
    if (interrupted)
        progress_printf(&t->prog, "%s: stopped after step %lld\n",
                        stop_signal == SIGINT ? "interrupted" : "terminated",
                        (long long)t->step);
    else if (t->time_up)
        progress_printf(&t->prog, "stopping after step %lld to end within the time limit "
                        "(%g s)\n", (long long)t->step, o->time_limit);
    else if (t->out_of_patience)
        progress_printf(&t->prog, "stopping after step %lld: %lld validations without a new "
                        "best (%.4f)\n", (long long)t->step, (long long)o->patience,
                        t->best_val);
    /* the final validation (skipped when interrupted: the user wants out) */
    if (!interrupted && t->nval > 0 && t->val_at != t->step) {
        double v;
        if ((rc = validate_and_record(t, &v)) != EXIT_OK || (rc = track_best(t, v)) != EXIT_OK)
            return rc;
    }
    if (o->save) {
        if ((rc = save_checkpoint(t, o->save)) != EXIT_OK)
            return rc;
        progress_printf(&t->prog, "saved %s (step %lld)\n", o->save, (long long)t->step);
    }
    if (o->plot && (rc = write_plot(t, t->val_at, t->val_last)) != EXIT_OK)
        return rc;
    if (t->log && ferror(t->log)) {
        errorf("writing '%s' failed", o->log);
        return EXIT_RUNTIME;
    }
    printf("train: steps=%lld loss=%.6f val_loss=%.6f tokens_per_s=%.1f elapsed_s=%.1f\n",
           (long long)t->step, recent_loss(t), t->val_last, train_speed(t),
           now_s() - t->t_start);
    fflush(stdout);
    return stop_signal ? EXIT_INTERRUPTED : EXIT_OK;
}

static void train_teardown(trainer *t)
{
    if (t->handlers) {
        sigaction(SIGINT, &t->old_int, NULL);
        sigaction(SIGTERM, &t->old_term, NULL);
    }
    meta_free(&t->meta);
    trainer_free(t);
}

int cmd_train(const charlm_opts *o)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.o = o;
    tr.cfg = o->cfg;
    tr.t_start = now_s();
    int rc = train_setup(&tr);
    if (rc == EXIT_OK) {
        rc = train_loop(&tr);
        progress_end(&tr.prog);
        if (tr.log)
            fflush(tr.log);
        if (rc == EXIT_OK)
            rc = train_finish(&tr);
        else if (o->plot && tr.n_loss > 0)
            write_plot(&tr, tr.step, NAN);
    }
    train_teardown(&tr);
    return rc;
}
