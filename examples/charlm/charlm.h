/* examples/charlm/charlm.h: declarations shared by the files of the charlm tool. */
#ifndef CHARLM_CHARLM_H
#define CHARLM_CHARLM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tapegrad.h"

/* Exit codes of every subcommand. */
enum {
    EXIT_OK = 0,           /* success                                          */
    EXIT_RUNTIME = 1,      /* I/O error, corrupt file, NaN loss, failed check  */
    EXIT_USAGE = 2,        /* bad command line                                 */
    EXIT_INTERRUPTED = 130 /* SIGINT / SIGTERM during training                 */
};

typedef enum charlm_cmd { CMD_TRAIN, CMD_SAMPLE, CMD_EVAL, CMD_GRADCHECK, CMD_COUNT } charlm_cmd;

/* ---- configuration -----------------------------------------------------------
 * charlm_config is what defines a model and its training run; it is stored in every
 * checkpoint, so sample/eval/resume need nothing else.
 */
typedef struct charlm_config {
    /* model */
    const tg_cell_type *cell;  /* a registered type; checkpoints store its name  */
    int layers, hidden;
    int embed;              /* 0: one-hot input                                      */
    double dropout;
    double var_dropout, zoneout, weight_drop;  /* the stack's recurrent regularisers */
    tg_init_kind init;
    double init_scale;      /* TG_INIT_UNIFORM's bound                               */
    bool forget_bias_one;
    /* training */
    int seq, batch;
    tg_optim_kind optim;
    double lr, clip, clip_value;
    double lr_decay;        /* multiply lr by this every lr_decay_every steps        */
    int64_t lr_decay_every; /* 0: once per epoch                                     */
    double val_frac;
    uint64_t seed;
} charlm_config;

/* Option identifiers (also indices of charlm_opts.given). */
typedef enum opt_id {
    OPT_HELP, OPT_DATA, OPT_CELL, OPT_LAYERS, OPT_HIDDEN, OPT_EMBED, OPT_DROPOUT, OPT_INIT,
    OPT_INIT_SCALE, OPT_FORGET_BIAS, OPT_SEQ, OPT_BATCH, OPT_STEPS, OPT_OPTIM, OPT_LR, OPT_CLIP,
    OPT_CLIP_VALUE, OPT_LR_DECAY, OPT_LR_DECAY_EVERY, OPT_VAL_FRAC, OPT_EVAL_EVERY, OPT_SAVE,
    OPT_SAVE_EVERY, OPT_RESUME, OPT_SEED, OPT_THREADS, OPT_LOG, OPT_PLOT, OPT_QUIET,
    OPT_PRINT_EVERY, OPT_TIME_LIMIT, OPT_MODEL, OPT_LEN, OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P,
    OPT_PRIME, OPT_ARGMAX, OPT_SPLIT, OPT_EPS, OPT_TOLERANCE, OPT_MAX_PER_TENSOR,
    OPT_VOCAB, OPT_UNKNOWN, OPT_STATEFUL, OPT_VAL_MODE, OPT_SAVE_BEST, OPT_PATIENCE,
    OPT_LR_SCHEDULE, OPT_WARMUP, OPT_MIN_LR, OPT_PLATEAU_FACTOR, OPT_PLATEAU_PATIENCE,
    OPT_INIT_FROM, OPT_INTERACTIVE, OPT_PRIME_FILE, OPT_BEAM,
    OPT_PLUGIN, OPT_VAR_DROPOUT, OPT_ZONEOUT, OPT_WEIGHT_DROP, OPT_PRESET, OPT_COUNT
} opt_id;

/* Everything a command line can say. */
typedef struct charlm_opts {
    charlm_cmd cmd;
    bool given[OPT_COUNT];   /* which options appeared on the command line */
    charlm_config cfg;
    const char *data, *save, *resume, *log, *plot, *model, *prime, *split;
    const char *save_best, *init_from, *prime_file;
    const char *cell_name;   /* --cell, looked up once every --plugin is loaded */
    int64_t steps, eval_every, save_every, print_every, len, top_k, max_per_tensor;
    int64_t patience;        /* 0: never stop early                                  */
    tg_schedule_kind lr_schedule;  /* train: STEP (the --lr-decay one), COSINE, PLATEAU */
    int64_t warmup;          /* --warmup: cosine's linear warm-up steps              */
    double min_lr;           /* --min-lr: cosine's final lr, plateau's floor         */
    double plateau_factor;   /* --plateau-factor                                      */
    int64_t plateau_patience;/* --plateau-patience: validations without improvement  */
    int64_t beam;            /* 0: sample; N: beam search of width N                 */
    double time_limit, temperature, top_p, eps, tolerance;
    int threads;
    bool quiet, argmax;
    bool stateful;           /* eval: carry the state across the whole split          */
    bool val_stateful;       /* train: --val-mode stateful                            */
    bool interactive;        /* sample: prompt lines from stdin                       */
    tg_vocab_kind vocab;     /* train/gradcheck: --vocab chars|bytes                  */
    tg_unknown unknown;      /* eval/sample: --unknown refuse|skip                    */
} charlm_opts;

/* options.c: parses argv (argv[0] is the subcommand) into o with the command's defaults.
   Returns EXIT_OK, EXIT_USAGE (message already printed) or -1 when --help was printed. */
int options_parse(charlm_cmd cmd, int argc, char **argv, charlm_opts *o);
/* Prints the usage of cmd (CMD_COUNT: the top-level usage) to f. */
void options_usage(FILE *f, charlm_cmd cmd);
/* Writes the manual page charlm.1 (roff) to f: every command's --help text, viz's
   (viz_usage_fn, may be NULL), exit status and examples. */
void options_man(FILE *f, void (*viz_usage_fn)(FILE *));
/* The command's name ("train", ...) and the command named s (CMD_COUNT if none). */
const char *cmd_name(charlm_cmd cmd);
charlm_cmd cmd_parse(const char *s);
/* The bundled corpus: examples/data/tinyshakespeare.txt from the working directory if it
   exists, else relative to the executable (../../examples/data/...). Never NULL. */
const char *default_data_path(void);
/* Applies --threads (or all cores). */
void apply_threads(const charlm_opts *o);

/* ---- plugin.c: cell types from shared objects ------------------------------------ */
/* Loads a shared object whose constructor registers cell types (--plugin). Returns EXIT_OK,
   or EXIT_RUNTIME with a message printed: the file cannot be loaded, its constructor
   registered nothing, or a registration was refused (a name clash, an invalid type). */
int plugin_load(const char *path);
/* "rnn, lstm, gru, ...": the registered cell types' names into out (truncated to size). */
void cell_types_list(char *out, size_t size);

/* ---- messages (main.c) -------------------------------------------------------- */
/* "charlm CMD: <message>\n" on stderr. */
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets the command name errorf prefixes. */
void set_error_prefix(const char *cmd);

/* ---- data.c: the corpus, on the library's text module (nn/text.h) ------------------ */
typedef struct corpus {
    tg_vocab_kind kind;  /* characters (UTF-8) or bytes                          */
    uint32_t *vocab;     /* V symbols, strictly increasing                       */
    int V;
    int32_t *ids;        /* n token ids (indices into vocab)                     */
    int64_t n;
    int64_t replaced;    /* invalid UTF-8 sequences decoded as U+FFFD            */
    int64_t skipped;     /* symbols outside the vocabulary left out (--unknown skip) */
    uint64_t bytes;      /* file size                                            */
    uint32_t crc;        /* CRC-32 of the file's bytes (a fingerprint for resume) */
} corpus;

/* Index of cp in the sorted character vocabulary, or -1. */
int vocab_find(const uint32_t *vocab, int V, uint32_t cp);

/* Reads path as symbols of kind. vocab == NULL: the vocabulary is the text's own (all 256
   bytes for TG_VOCAB_BYTES); else the text is mapped onto the given one, and a symbol
   outside it is an error ("... is not in the model's vocabulary") or, with
   TG_UNKNOWN_SKIP, left out and counted in c->skipped.
   Returns EXIT_OK or EXIT_RUNTIME with a one-line message in err. */
int corpus_load_as(const char *path, tg_vocab_kind kind, const uint32_t *vocab, int V,
                   tg_unknown unknown, corpus *c, char *err, size_t errsize);
/* corpus_load_as for characters, refusing unknown ones. */
int corpus_load(const char *path, const uint32_t *vocab, int V, corpus *c, char *err,
                size_t errsize);
void corpus_free(corpus *c);

/* Validation split: the last floor(n * val_frac) tokens. */
int64_t corpus_val_count(int64_t n, double val_frac);

/* ---- eval.c: validation loss -------------------------------------------------------- */
/* Mean cross-entropy (nats/char) of m over the non-overlapping seq-length chunks of
   ids[0..n), each from a zero state, batched. *chars receives the number of predicted
   characters. Returns EXIT_OK or EXIT_RUNTIME (message in err). n < seq + 1: loss NaN. */
int eval_loss(const tg_charlm *m, const int32_t *ids, int64_t n, int seq, double *loss,
              int64_t *chars, char *err, size_t errsize);
/* The same over ids[0..n) read as one stream in order, the state carried from each window
   of seq predictions to the next (n - 1 predicted characters). n < 2: loss NaN. */
int eval_loss_stateful(const tg_charlm *m, const int32_t *ids, int64_t n, int seq,
                       double *loss, int64_t *chars, char *err, size_t errsize);
/* eval_loss_stateful when stateful, else eval_loss. */
int eval_split(const tg_charlm *m, const int32_t *ids, int64_t n, int seq, bool stateful,
               double *loss, int64_t *chars, char *err, size_t errsize);
int cmd_eval(const charlm_opts *o);

/* ---- meta.c: checkpoint metadata ---------------------------------------------------- */
#define META_VERSION 3u   /* 1: the cell as a code (rnn 0, lstm 1, gru 2); 2: no
                             recurrent regularisers; both still read */

typedef struct charlm_meta {
    charlm_config cfg;
    uint64_t data_bytes;
    uint32_t data_crc;
    int V;
    tg_vocab_kind vocab_kind; /* characters or bytes                         */
    uint32_t *vocab;         /* V symbols, strictly increasing              */
    int64_t step;            /* optimizer steps taken                       */
    int64_t cursor;          /* next training window                        */
    tg_rng rng;              /* dropout RNG                                 */
    int64_t state_batch;     /* carried hidden state: layers x (B,H) floats */
    int state_layers;        /* per state tensor                            */
    int state_hidden;
    int state_n;             /* state tensors per layer (the type's nstate) */
    float *state[TG_MAX_CELL_STATE];   /* layers*B*H each, k < state_n        */
    int64_t n_loss;          /* training loss of every step 1..n_loss       */
    float *loss;
    int64_t n_val;           /* periodic validation losses                  */
    int64_t *val_step;
    double *val_loss;
} charlm_meta;

/* Encodes m (little-endian, versioned) into a malloc'ed buffer. EXIT_OK or EXIT_RUNTIME. */
int meta_encode(const charlm_meta *m, unsigned char **buf, size_t *size);
/* Decodes and validates; on failure a one-line message and nothing to free. */
int meta_decode(const unsigned char *buf, size_t size, charlm_meta *m, char *err,
                size_t errsize);
void meta_free(charlm_meta *m);

/* ---- model.c: building and loading models -------------------------------------------- */
/* Builds the model of cfg with vocabulary size V into a new params collection of dtype,
   initialised from cfg->seed. Returns EXIT_OK or EXIT_RUNTIME (message in err). */
int model_build(const charlm_config *cfg, int V, tg_dtype dtype, tg_params **ps, tg_charlm *m,
                char *err, size_t errsize);
/* Reads and validates a checkpoint's metadata (nothing to free on failure). Returns EXIT_OK
   or EXIT_RUNTIME (message in err). */
int meta_read(const char *path, charlm_meta *meta, char *err, size_t errsize);
/* Reads a checkpoint's metadata and builds its model with the saved weights (optimizer
   state ignored). Returns EXIT_OK or EXIT_RUNTIME (message in err). */
int model_load(const char *path, charlm_meta *meta, tg_params **ps, tg_charlm *m, char *err,
               size_t errsize);
/* The optimizer configuration of cfg (char-rnn's RMSprop alpha 0.95). */
tg_optim_config model_optim_config(const charlm_config *cfg);
/* The regularisers cfg sets, as ", dropout X, var-dropout X, zoneout X, weight-drop X"
   (the nonzero ones only; "" when none) into buf, for the lines that describe a model. */
const char *model_regularisers(const charlm_config *cfg, char *buf, size_t size);

/* ---- finetune.c: train --init-from ---------------------------------------------------- */
/* Reads the --init-from checkpoint's metadata into init and its model options into cfg
   (refusing different ones given on the command line). EXIT_OK, EXIT_USAGE or
   EXIT_RUNTIME (message printed). */
int finetune_config(const charlm_opts *o, charlm_config *cfg, charlm_meta *init);
/* Extends c's vocabulary (the text's own) to init's plus the text's unseen symbols and
   remaps c's ids; *added receives the number of new symbols. EXIT_OK or EXIT_RUNTIME. */
int finetune_vocab(corpus *c, const charlm_meta *init, int64_t *added);
/* Copies the checkpoint's weights into ps (a new model over c's vocabulary): every old
   symbol's rows follow it; new symbols keep their fresh init. EXIT_OK or EXIT_RUNTIME. */
int finetune_weights(const char *path, const corpus *c, tg_params *ps);

/* ---- the subcommands ----------------------------------------------------------------- */
int cmd_train(const charlm_opts *o);
int cmd_sample(const charlm_opts *o);
int cmd_gradcheck(const charlm_opts *o);

/* ---- progress.c ---------------------------------------------------------------------- */
/* Seconds on a monotonic clock. */
double now_s(void);
typedef struct progress {
    bool tty, quiet, line_open;
    int64_t every;           /* non-TTY: a line every this many steps     */
    double last_draw, last_line;
} progress;
void progress_init(progress *p, bool quiet, int64_t every);
/* Reports step/total; draws the updating line (TTY) or prints a line when due. */
void progress_step(progress *p, int64_t step, int64_t total, double loss, double tokens_per_s,
                   double eta_s, double lr);
/* Prints a whole line (unless quiet), first clearing an open updating line. */
void progress_printf(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends an open updating line. */
void progress_end(progress *p);

/* ---- plot.c ---------------------------------------------------------------------------- */
/* Writes a self-contained SVG of the training loss (loss[i] is step first_step + i) and the
   validation points. Returns EXIT_OK or EXIT_RUNTIME (message in err). */
int plot_write_svg(const char *path, const float *loss, int64_t n_loss, int64_t first_step,
                   const int64_t *val_step, const double *val_loss, int64_t n_val,
                   const char *title, char *err, size_t errsize);

#endif /* CHARLM_CHARLM_H */
