/* examples/charlm/options.c: the command-line options of every subcommand (one table
   drives getopt_long, validation and the --help text), defaults, and the data path. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/charlm/charlm.h"

#define T_ (1u << CMD_TRAIN)
#define S_ (1u << CMD_SAMPLE)
#define E_ (1u << CMD_EVAL)
#define G_ (1u << CMD_GRADCHECK)
#define ALL_ (T_ | S_ | E_ | G_)

typedef struct opt_spec {
    opt_id id;
    const char *name;
    const char *arg;   /* value placeholder, NULL for a flag */
    unsigned cmds;     /* the commands that take it          */
    const char *help;
} opt_spec;

static const opt_spec SPECS[] = {
    {OPT_PRESET, "preset", "NAME", T_,
     "start from a named recipe (listed below); options given besides it override its "
     "values"},
    {OPT_DATA, "data", "FILE", T_ | E_ | G_,
     "UTF-8 text (default: the bundled examples/data/tinyshakespeare.txt)"},
    {OPT_MODEL, "model", "FILE", S_ | E_, "checkpoint written by 'charlm train --save' (required)"},
    {OPT_CELL, "cell", "NAME", T_ | G_,
     "recurrent cell type, any registered one (listed below; default lstm)"},
    {OPT_PLUGIN, "plugin", "FILE.so", ALL_,
     "load a shared object whose constructor registers cell types (repeatable)"},
    {OPT_LAYERS, "layers", "N", T_ | G_, "stacked recurrent layers, 1..16 (default 2)"},
    {OPT_HIDDEN, "hidden", "N", T_ | G_, "hidden units per layer (default 128)"},
    {OPT_EMBED, "embed", "N", T_ | G_, "embedding size; 0 feeds one-hot characters (default 0)"},
    {OPT_DROPOUT, "dropout", "X", T_ | G_, "dropout between layers, 0 <= X < 1 (default 0)"},
    {OPT_VAR_DROPOUT, "var-dropout", "X", T_ | G_,
     "variational dropout, 0 <= X < 1: one mask per window on every layer's input and on "
     "the recurrent h each cell reads (default 0)"},
    {OPT_ZONEOUT, "zoneout", "X", T_ | G_,
     "zoneout, 0 <= X < 1: each unit of every state keeps its previous value with "
     "probability X in training; evaluation and sampling use the expectation (default 0)"},
    {OPT_WEIGHT_DROP, "weight-drop", "X", T_ | G_,
     "weight drop, 0 <= X < 1: DropConnect on the weights that multiply h, one mask per "
     "window (default 0)"},
    {OPT_INIT, "init", "KIND", T_ | G_,
     "weight init: orthogonal (xavier with orthogonal recurrent blocks and, for one-hot "
     "input, N(0,1) input rows in the first layer, as an embedding table), xavier (Glorot "
     "uniform weights, zero biases), uniform (+-init-scale, char-rnn's) or torch "
     "(+-1/sqrt(hidden), PyTorch's) (default orthogonal: the best validation loss of "
     "the four on the bundled corpus)"},
    {OPT_INIT_SCALE, "init-scale", "X", T_ | G_, "bound of --init uniform (default 0.08)"},
    {OPT_FORGET_BIAS, "forget-bias-one", NULL, T_ | G_, "LSTM: start the forget-gate bias at 1"},
    {OPT_SEQ, "seq", "N", T_ | G_,
     "characters per truncated-BPTT window (default 50; gradcheck: 4)"},
    {OPT_BATCH, "batch", "N", T_ | G_, "parallel streams per step (default 50; gradcheck: 2)"},
    {OPT_STEPS, "steps", "N", T_, "total optimizer steps, also when resuming (default 2000)"},
    {OPT_TIME_LIMIT, "time-limit", "SECONDS", T_,
     "stop cleanly after this much wall time, save and summarise (default: none)"},
    {OPT_OPTIM, "optim", "NAME", T_, "rmsprop, adam, adamw, sgd or adagrad (default rmsprop)"},
    {OPT_LR, "lr", "X", T_, "learning rate (default 2e-3)"},
    {OPT_CLIP, "clip", "X", T_, "clip the global gradient norm to X; 0: off (default 5)"},
    {OPT_CLIP_VALUE, "clip-value", "X", T_, "clamp each gradient to [-X, X]; 0: off (default 0)"},
    {OPT_LR_DECAY, "lr-decay", "X", T_, "multiply the learning rate by X ... (default 1: off)"},
    {OPT_LR_DECAY_EVERY, "lr-decay-every", "N", T_, "... every N steps (default: every epoch)"},
    {OPT_LR_SCHEDULE, "lr-schedule", "KIND", T_, "step (the --lr-decay one), cosine (linear "
     "warm-up, then cosine to --min-lr at --steps) or plateau (lr *= --plateau-factor when "
     "the validation loss stops improving) (default step)"},
    {OPT_WARMUP, "warmup", "N", T_, "cosine: warm-up steps from lr/10 (default 0)"},
    {OPT_MIN_LR, "min-lr", "X", T_, "cosine: the final lr; plateau: the least lr (default 0)"},
    {OPT_PLATEAU_FACTOR, "plateau-factor", "X", T_, "plateau: multiply the lr by X, "
     "0 < X < 1 (default 0.5)"},
    {OPT_PLATEAU_PATIENCE, "plateau-patience", "N", T_, "plateau: validations without "
     "improvement tolerated (default 2)"},
    {OPT_VAL_FRAC, "val-frac", "X", T_ | E_,
     "the last X of the text is validation data, 0 <= X < 1 (default 0.1; eval: the model's)"},
    {OPT_EVAL_EVERY, "eval-every", "N", T_, "validate every N steps; 0: only at the end "
                                            "(default 500)"},
    {OPT_SAVE, "save", "FILE", T_, "write the checkpoint here at the end (and on SIGINT)"},
    {OPT_SAVE_EVERY, "save-every", "N", T_, "also save every N steps (needs --save; default 0)"},
    {OPT_RESUME, "resume", "FILE", T_,
     "continue bit-exactly from a checkpoint (model, data position, optimizer, RNG)"},
    {OPT_LOG, "log", "FILE.csv", T_, "CSV: step,loss,val_loss,lr,grad_norm,tokens_per_s"},
    {OPT_PLOT, "plot", "FILE.svg", T_, "SVG plot of the training and validation loss"},
    {OPT_PRINT_EVERY, "print-every", "N", T_,
     "without a terminal, a progress line every N steps (default 100)"},
    {OPT_QUIET, "quiet", NULL, T_, "print only the final summary line"},
    {OPT_LEN, "len", "N", S_, "characters to generate after the prime text (default 500)"},
    {OPT_PRIME, "prime", "TEXT", S_, "text to start from; it is printed first (default none)"},
    {OPT_TEMPERATURE, "temperature", "X", S_,
     "divide the logits by X > 0; lower is more conservative (default 1)"},
    {OPT_TOP_K, "top-k", "N", S_, "sample among the N most likely characters; 0: all "
                                  "(default 0)"},
    {OPT_TOP_P, "top-p", "X", S_, "sample from the smallest set with probability >= X, "
                                  "0 < X <= 1 (default 1)"},
    {OPT_ARGMAX, "argmax", NULL, S_, "always take the most likely character (greedy)"},
    {OPT_SPLIT, "split", "WHICH", E_, "val: the validation split (default); all: the whole file"},
    {OPT_EPS, "eps", "X", G_, "finite-difference step (default 1e-5)"},
    {OPT_TOLERANCE, "tolerance", "X", G_, "largest relative error that passes (default 1e-6)"},
    {OPT_MAX_PER_TENSOR, "max-per-tensor", "N", G_,
     "check at most N elements of each parameter, spread evenly; 0: all (default 64)"},
    {OPT_VOCAB, "vocab", "KIND", T_ | G_,
     "chars: the text's UTF-8 characters (default); bytes: all 256 byte values, so any "
     "file, binary included, trains, samples and evaluates with no unknown symbol"},
    {OPT_UNKNOWN, "unknown", "POLICY", S_ | E_,
     "a character outside the model's vocabulary (in --data, --prime or --prime-file): "
     "refuse (default: exit 1 naming it) or skip (leave it out and report how many)"},
    {OPT_STATEFUL, "stateful", NULL, E_,
     "carry the hidden state across the whole split in order, one stream, as recurrent "
     "language models are usually compared (default: chunked, as training validates)"},
    {OPT_VAL_MODE, "val-mode", "MODE", T_,
     "periodic validation: chunked (seq-length chunks from a zero state, default) or "
     "stateful (eval --stateful)"},
    {OPT_SAVE_BEST, "save-best", "FILE", T_,
     "also write the checkpoint with the lowest validation loss so far here (atomically)"},
    {OPT_PATIENCE, "patience", "N", T_,
     "stop after N validations in a row without a new lowest loss; 0: never (default 0)"},
    {OPT_INIT_FROM, "init-from", "FILE", T_,
     "start a new run (step 0, new data, new optimizer state) from a checkpoint's weights "
     "and model options; characters it has never seen extend the vocabulary with fresh "
     "rows, the known ones keep theirs"},
    {OPT_INTERACTIVE, "interactive", NULL, S_,
     "read a prompt line from standard input, stream --len characters after it, keep the "
     "state for the next line; ends at end of input (works in a pipe)"},
    {OPT_PRIME_FILE, "prime-file", "FILE", S_, "start from the text of FILE ('--prime -': "
                                               "standard input)"},
    {OPT_BEAM, "beam", "N", S_,
     "beam search of width N (deterministic): the --len characters of highest probability "
     "found; prints their log-probability on stderr (N 1: greedy)"},
    {OPT_SEED, "seed", "N", T_ | S_ | G_,
     "random seed: init, dropout, sampling; the same seed gives the same result (default 1)"},
    {OPT_THREADS, "threads", "N", ALL_, "OpenMP threads (default: all cores); results do not "
                                        "depend on it"},
    {OPT_HELP, "help", NULL, ALL_, "show this help and exit"},
};
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char *const CMD_NAMES[CMD_COUNT] = {"train", "sample", "eval", "gradcheck"};

static const char *const CMD_SYNOPSIS[CMD_COUNT] = {
    "train a character-level language model",
    "generate text from a trained model, streamed to stdout",
    "validation loss (nats/char), bits/char and perplexity of a trained model",
    "check the model's gradients numerically (float64, tiny batch)",
};

const char *cmd_name(charlm_cmd cmd)
{
    return cmd < CMD_COUNT ? CMD_NAMES[cmd] : "charlm";
}

charlm_cmd cmd_parse(const char *s)
{
    for (int c = 0; c < CMD_COUNT; c++)
        if (strcmp(s, CMD_NAMES[c]) == 0)
            return (charlm_cmd)c;
    return CMD_COUNT;
}

/* Prints text wrapped at width, each continuation line indented by indent. */
static void wrap(FILE *f, const char *text, int col, int indent, int width)
{
    const char *p = text;
    while (*p) {
        const char *end = p;
        const char *brk = NULL;
        while (*end && col + (end - p) < width) {
            if (*end == ' ')
                brk = end;
            end++;
        }
        if (!*end || !brk)
            brk = end;
        fprintf(f, "%.*s", (int)(brk - p), p);
        p = brk;
        while (*p == ' ')
            p++;
        if (*p) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        }
    }
    fputc('\n', f);
}

/* Presets: named recipes for train, applied as if typed before the command line's own
   options. shakespeare reaches a stateful validation loss below 1.47 nats/char on the
   bundled corpus in under an hour on two cores (README, "A model in an hour"). */
typedef struct preset {
    const char *name;
    const char *const *args;   /* option, value, ...; NULL-terminated */
} preset;

static const char *const SHAKESPEARE[] = {
    "--cell", "lstm", "--layers", "2", "--hidden", "512", "--seq", "100", "--batch", "32",
    "--dropout", "0.5", "--weight-drop", "0.25", "--optim", "adamw", "--lr", "2e-3",
    "--lr-schedule", "cosine", "--warmup", "100", "--min-lr", "1e-4", "--steps", "5400",
    "--eval-every", "1000", NULL,
};

static const preset PRESETS[] = {
    {"shakespeare", SHAKESPEARE},
};
#define NPRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

static const preset *preset_find(const char *name)
{
    for (int i = 0; i < NPRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    return NULL;
}

/* Prints each preset as the options it stands for. */
static void presets_usage(FILE *f)
{
    fprintf(f, "\nPresets (--preset NAME):\n");
    for (int i = 0; i < NPRESETS; i++) {
        char line[512];
        size_t n = 0;
        for (const char *const *a = PRESETS[i].args; *a && n < sizeof line; a++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", n ? " " : "", *a);
        int col = fprintf(f, "  %-26s", PRESETS[i].name);
        wrap(f, line, col, 28, 96);
    }
}

void options_usage(FILE *f, charlm_cmd cmd)
{
    if (cmd >= CMD_COUNT) {
        fprintf(f, "usage: charlm COMMAND [OPTIONS]\n\n"
                   "A character-level language model (RNN, LSTM, GRU) built on tapegrad.\n\n"
                   "Commands:\n");
        for (int c = 0; c < CMD_COUNT; c++)
            fprintf(f, "  %-10s  %s\n", CMD_NAMES[c], CMD_SYNOPSIS[c]);
        fprintf(f, "\n'charlm COMMAND --help' lists a command's options.\n\n"
                   "Examples:\n"
                   "  charlm train --steps 2000 --save lm.ckpt --plot loss.svg\n"
                   "  charlm train --resume lm.ckpt --steps 4000 --save lm.ckpt\n"
                   "  charlm sample --model lm.ckpt --len 500 --temperature 0.8\n"
                   "  charlm eval --model lm.ckpt\n"
                   "  charlm gradcheck --cell gru --hidden 16\n\n"
                   "Exit status: 0 success, 1 runtime error (I/O, corrupt file, NaN loss, "
                   "failed check),\n2 usage error, 130 interrupted.\n\n"
                   "On a machine whose cores other programs are using, the library falls "
                   "back to one\nthread (it asks the kernel, and times threads against "
                   "one); --threads 1 makes sure.\nResults never depend on the thread "
                   "count.\n");
        return;
    }
    fprintf(f, "usage: charlm %s [OPTIONS]\n\n", CMD_NAMES[cmd]);
    switch (cmd) {
    case CMD_TRAIN:
        fprintf(f, "Trains with truncated backpropagation through time: the batch rows read "
                   "contiguous\nstreams of the training text and the hidden state is carried "
                   "from one window to\nthe next (char-rnn's scheme). The last line is\n"
                   "  train: steps=N loss=X val_loss=X tokens_per_s=X elapsed_s=X\n"
                   "where loss is the mean training loss of the last 20 steps and val_loss the "
                   "mean\ncross-entropy (nats/char) over seq-length chunks of the validation "
                   "split, each\nfrom a zero state. SIGINT/SIGTERM finish the current step, "
                   "save (--save) and\nexit 130. Defaults are char-rnn's.\n\n");
#ifdef TG_WITH_MPI
        fprintf(f, "Built with MPI: 'mpirun -np N charlm train ...' trains data-parallel on N "
                   "ranks (--batch\nis the global batch; rank 0 prints, validates and saves; "
                   "see docs/MPI.md).\n\n");
#endif
        break;
    case CMD_SAMPLE:
        fprintf(f, "Prints the prime text, then --len generated characters as they come.\n\n");
        break;
    case CMD_EVAL:
        fprintf(f, "Evaluates the model on --data as training validated it (non-overlapping "
                   "chunks of the\nmodel's sequence length, each from a zero state). The last "
                   "line is\n  eval: loss=X bpc=X perplexity=X chars=N\n\n");
        break;
    case CMD_GRADCHECK:
        fprintf(f, "Builds the configured model in float64 (vocabulary from --data), runs a "
                   "--batch x --seq\nbatch through it, and compares every parameter's "
                   "gradient with central\ndifferences. Prints each parameter's worst relative "
                   "error, then\n  gradcheck: params=N max_rel_err=X\nand exits 0 only if all "
                   "pass.\n\n");
        break;
    default:
        break;
    }
    fprintf(f, "Options:\n");
    for (int i = 0; i < NSPECS; i++) {
        const opt_spec *s = &SPECS[i];
        if (!(s->cmds & (1u << cmd)))
            continue;
        char left[64];
        snprintf(left, sizeof left, "  --%s%s%s", s->name, s->arg ? " " : "",
                 s->arg ? s->arg : "");
        int col = fprintf(f, "%-28s", left);
        if (col > 28) {
            fprintf(f, "\n%28s", "");
            col = 28;
        }
        wrap(f, s->help, col, 28, 96);
    }
    if (cmd == CMD_TRAIN || cmd == CMD_GRADCHECK) {
        char names[512];
        cell_types_list(names, sizeof names);
        fprintf(f, "\nRegistered cell types: %s\n(a --plugin FILE.so given before --help "
                   "adds its own)\n", names);
    }
    if (cmd == CMD_TRAIN)
        presets_usage(f);
}

/* ---- the manual page ------------------------------------------------------------------
 * charlm.1 is generated from the same table as --help (make builds it with 'charlm --man'),
 * so the two cannot drift apart.
 */
/* Writes s as roff text: backslashes and hyphens escaped, no line starting with a dot. */
static void man_text(FILE *f, const char *s)
{
    bool line_start = true;
    for (; *s; s++) {
        if (line_start && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
        line_start = *s == '\n';
    }
}

/* The usage text of one command (options_usage's) as a preformatted block. */
static void man_usage_block(FILE *f, void (*usage)(FILE *, charlm_cmd), charlm_cmd cmd)
{
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem)
        return;
    usage(mem, cmd);
    fclose(mem);
    fputs(".nf\n", f);
    man_text(f, text);
    fputs(".fi\n", f);
    free(text);
}

void options_man(FILE *f, void (*viz_usage_fn)(FILE *))
{
    fputs(".TH CHARLM 1 \"\" \"tapegrad\" \"User Commands\"\n.SH NAME\n"
          "charlm \\- a character-level language model (RNN, LSTM, GRU) on tapegrad\n"
          ".SH SYNOPSIS\n.B charlm\n.I COMMAND\n[\\fIOPTIONS\\fR]\n.SH DESCRIPTION\n", f);
    man_text(f, "charlm trains a recurrent character-level language model on a text file, "
                "samples from it, evaluates it, checks its gradients numerically and shows "
                "its gates in an HTML page. Every command's options follow; "
                "'charlm COMMAND --help' prints the same text.\n");
    fputs(".SH COMMANDS\n", f);
    for (int c = 0; c < CMD_COUNT; c++) {
        fprintf(f, ".SS %s\n", CMD_NAMES[c]);
        man_text(f, CMD_SYNOPSIS[c]);
        fputs(".\n", f);
        man_usage_block(f, options_usage, (charlm_cmd)c);
    }
    if (viz_usage_fn) {
        char *text = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&text, &size);
        if (mem) {
            viz_usage_fn(mem);
            fclose(mem);
            fputs(".SS viz\nan HTML page of every gate over a text.\n.nf\n", f);
            man_text(f, text);
            fputs(".fi\n", f);
            free(text);
        }
    }
    fputs(".SH EXIT STATUS\n", f);
    man_text(f, "0 success; 1 runtime error (I/O, corrupt file, NaN loss, failed check); "
                "2 usage error; 130 interrupted (SIGINT or SIGTERM during training, after "
                "saving).\n");
    fputs(".SH EXAMPLES\n.nf\n", f);
    man_text(f, "charlm train --steps 2000 --save lm.ckpt --plot loss.svg\n"
                "charlm train --resume lm.ckpt --steps 4000 --save lm.ckpt\n"
                "charlm train --data mine.txt --init-from lm.ckpt --save mine.ckpt\n"
                "charlm train --save-best best.ckpt --patience 5 --eval-every 200\n"
                "charlm train --data file.bin --vocab bytes --save bytes.ckpt\n"
                "charlm sample --model lm.ckpt --len 500 --temperature 0.8\n"
                "charlm sample --model lm.ckpt --beam 8 --prime-file start.txt\n"
                "charlm sample --model lm.ckpt --interactive --len 200\n"
                "charlm eval --model lm.ckpt --stateful\n"
                "charlm gradcheck --cell gru --hidden 16\n"
                "charlm viz --model lm.ckpt --text input.txt --out gates.html\n");
    fputs(".fi\n.SH ENVIRONMENT\n", f);
    man_text(f, "OMP_NUM_THREADS sets the default thread count. On a machine whose cores "
                "other programs are using, the library runs on one thread while they hold "
                "the cores (it reads the kernel's count of runnable threads, and times "
                "threads against one thread); --threads 1 or OMP_WAIT_POLICY=passive makes "
                "sure. Results never depend on the thread count.\n");
    fputs(".SH SEE ALSO\nThe tapegrad README.md.\n", f);
}

/* ---- value parsing ------------------------------------------------------------------ */
static int bad_value(charlm_cmd cmd, const char *opt, const char *want, const char *got)
{
    fprintf(stderr, "charlm %s: --%s: expected %s, got '%s'\n", cmd_name(cmd), opt, want, got);
    return EXIT_USAGE;
}

static int parse_int(charlm_cmd cmd, const char *opt, const char *s, int64_t lo, int64_t hi,
                     const char *want, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return bad_value(cmd, opt, want, s);
    *out = v;
    return EXIT_OK;
}

static int parse_u64(charlm_cmd cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || *p == '-')
        return bad_value(cmd, opt, "a non-negative integer", s);
    *out = v;
    return EXIT_OK;
}

/* lo/hi bounds; lo_open/hi_open exclude them. */
static int parse_real(charlm_cmd cmd, const char *opt, const char *s, double lo, bool lo_open,
                      double hi, bool hi_open, const char *want, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || (lo_open && v == lo) ||
        v > hi || (hi_open && v == hi))
        return bad_value(cmd, opt, want, s);
    *out = v;
    return EXIT_OK;
}

/* ---- numeric options: one row each, its range, the field it fills and its default ---- */
#define FIELD(f) offsetof(charlm_opts, f)
#define MAX_COUNT (INT64_MAX / 4)   /* steps and counts: far past any run, never overflows */

typedef struct int_opt {
    opt_id id;
    int64_t lo, hi;
    const char *want;   /* the error message's "expected ..."                          */
    size_t off, size;   /* the field: an int or an int64_t                             */
    int64_t dflt;       /* when not given; 0 may lie below lo, meaning "none" or "auto" */
} int_opt;
#define INT_FIELD(f) FIELD(f), sizeof ((charlm_opts *)0)->f

static const int_opt INT_OPTS[] = {
    {OPT_LAYERS, 1, TG_MAX_LAYERS, "an integer from 1 to 16", INT_FIELD(cfg.layers), 2},
    {OPT_HIDDEN, 1, 65536, "an integer from 1 to 65536", INT_FIELD(cfg.hidden), 128},
    {OPT_EMBED, 0, 65536, "an integer from 0 to 65536", INT_FIELD(cfg.embed), 0},
    {OPT_SEQ, 1, 1000000, "a positive integer", INT_FIELD(cfg.seq), 50},  /* gradcheck: 4 */
    {OPT_BATCH, 1, 1000000, "a positive integer", INT_FIELD(cfg.batch), 50}, /* gradcheck: 2 */
    {OPT_LR_DECAY_EVERY, 1, MAX_COUNT, "a positive integer", INT_FIELD(cfg.lr_decay_every), 0},
    {OPT_STEPS, 1, MAX_COUNT, "a positive integer", INT_FIELD(steps), 2000},
    {OPT_EVAL_EVERY, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(eval_every), 500},
    {OPT_SAVE_EVERY, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(save_every), 0},
    {OPT_PRINT_EVERY, 1, MAX_COUNT, "a positive integer", INT_FIELD(print_every), 100},
    {OPT_LEN, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(len), 500},
    {OPT_PATIENCE, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(patience), 0},
    {OPT_WARMUP, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(warmup), 0},
    {OPT_PLATEAU_PATIENCE, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(plateau_patience),
     2},
    {OPT_BEAM, 1, 10000, "an integer from 1 to 10000", INT_FIELD(beam), 0},
    {OPT_TOP_K, 0, INT32_MAX, "a non-negative integer", INT_FIELD(top_k), 0},
    {OPT_MAX_PER_TENSOR, 0, MAX_COUNT, "a non-negative integer", INT_FIELD(max_per_tensor), 64},
    {OPT_THREADS, 1, 4096, "an integer from 1 to 4096", INT_FIELD(threads), 0},
};

/* Reals: lo/hi bounds, lo_open/hi_open exclude them (parse_real's). */
typedef struct real_opt {
    opt_id id;
    double lo;
    bool lo_open;
    double hi;
    bool hi_open;
    const char *want;
    size_t off;         /* the double field */
    double dflt;        /* when not given   */
} real_opt;

static const real_opt REAL_OPTS[] = {
    {OPT_DROPOUT, 0, false, 1, true, "a number in [0, 1)", FIELD(cfg.dropout), 0},
    {OPT_VAR_DROPOUT, 0, false, 1, true, "a number in [0, 1)", FIELD(cfg.var_dropout), 0},
    {OPT_ZONEOUT, 0, false, 1, true, "a number in [0, 1)", FIELD(cfg.zoneout), 0},
    {OPT_WEIGHT_DROP, 0, false, 1, true, "a number in [0, 1)", FIELD(cfg.weight_drop), 0},
    {OPT_INIT_SCALE, 0, true, 100, false, "a number in (0, 100]", FIELD(cfg.init_scale), 0.08},
    {OPT_LR, 0, true, 1e300, false, "a number > 0", FIELD(cfg.lr), 2e-3},
    {OPT_CLIP, 0, false, 1e300, false, "a number >= 0", FIELD(cfg.clip), 5.0},
    {OPT_CLIP_VALUE, 0, false, 1e300, false, "a number >= 0", FIELD(cfg.clip_value), 0},
    {OPT_LR_DECAY, 0, true, 1, false, "a number in (0, 1]", FIELD(cfg.lr_decay), 1.0},
    {OPT_MIN_LR, 0, false, 1e300, false, "a number >= 0", FIELD(min_lr), 0},
    {OPT_PLATEAU_FACTOR, 0, true, 1, true, "a number in (0, 1)", FIELD(plateau_factor), 0.5},
    {OPT_VAL_FRAC, 0, false, 0.9, false, "a number in [0, 0.9]", FIELD(cfg.val_frac), 0.1},
    {OPT_TIME_LIMIT, 0, true, 1e9, false, "a number of seconds > 0", FIELD(time_limit), 0},
    {OPT_TEMPERATURE, 0, true, 1e6, false, "a number > 0", FIELD(temperature), 1.0},
    {OPT_TOP_P, 0, true, 1, false, "a number in (0, 1]", FIELD(top_p), 1.0},
    {OPT_EPS, 0, true, 1, false, "a number in (0, 1]", FIELD(eps), 1e-5},
    {OPT_TOLERANCE, 0, true, 1e6, false, "a number > 0", FIELD(tolerance), 1e-6},
};
#define NINT_OPTS (sizeof INT_OPTS / sizeof INT_OPTS[0])
#define NREAL_OPTS (sizeof REAL_OPTS / sizeof REAL_OPTS[0])

/* Writes x into r's field (an int or an int64_t) of o. */
static void int_store(charlm_opts *o, const int_opt *r, int64_t x)
{
    char *field = (char *)o + r->off;
    if (r->size == sizeof(int))
        *(int *)field = (int)x;             /* every int field's range fits */
    else
        *(int64_t *)field = x;
}

/* Every option's default: the numeric tables' and the rest here. */
static void defaults(charlm_cmd cmd, charlm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    for (size_t i = 0; i < NINT_OPTS; i++)
        int_store(o, &INT_OPTS[i], INT_OPTS[i].dflt);
    for (size_t i = 0; i < NREAL_OPTS; i++)
        *(double *)((char *)o + REAL_OPTS[i].off) = REAL_OPTS[i].dflt;
    if (cmd == CMD_GRADCHECK) {
        o->cfg.seq = 4;                     /* a tiny float64 batch: quick to check */
        o->cfg.batch = 2;
    }
    o->cell_name = "lstm";
    o->cfg.init = TG_INIT_ORTHOGONAL;
    o->cfg.optim = TG_RMSPROP;
    o->cfg.seed = 1;
    o->split = "val";
    o->prime = "";
    o->lr_schedule = TG_SCHED_STEP;
}

/* Numeric options: parses v into the field of s->id's row (--seed: any uint64_t). */
static int set_number(charlm_cmd cmd, const opt_spec *s, const char *v, charlm_opts *o)
{
    if (s->id == OPT_SEED)
        return parse_u64(cmd, s->name, v, &o->cfg.seed);
    for (size_t i = 0; i < NINT_OPTS; i++) {
        const int_opt *r = &INT_OPTS[i];
        if (r->id != s->id)
            continue;
        int64_t x;
        int rc = parse_int(cmd, s->name, v, r->lo, r->hi, r->want, &x);
        if (rc == EXIT_OK)
            int_store(o, r, x);
        return rc;
    }
    for (size_t i = 0; i < NREAL_OPTS; i++) {
        const real_opt *r = &REAL_OPTS[i];
        if (r->id == s->id)
            return parse_real(cmd, s->name, v, r->lo, r->lo_open, r->hi, r->hi_open, r->want,
                              (double *)((char *)o + r->off));
    }
    return EXIT_OK;
}

/* ---- word options: one of a few words, each standing for a value ------------------- */
typedef struct word_opt {
    opt_id id;
    const char *want;       /* the error message's "expected ..." */
    const char *words[5];   /* NULL after the last                 */
    int values[4];          /* what each word stands for           */
} word_opt;

static const word_opt WORD_OPTS[] = {
    {OPT_VOCAB, "chars or bytes", {"chars", "bytes"}, {TG_VOCAB_CHARS, TG_VOCAB_BYTES}},
    {OPT_UNKNOWN, "refuse or skip", {"refuse", "skip"}, {TG_UNKNOWN_REFUSE, TG_UNKNOWN_SKIP}},
    {OPT_LR_SCHEDULE, "step, cosine or plateau", {"step", "cosine", "plateau"},
     {TG_SCHED_STEP, TG_SCHED_COSINE, TG_SCHED_PLATEAU}},
    {OPT_VAL_MODE, "chunked or stateful", {"chunked", "stateful"}, {false, true}},
    {OPT_INIT, "xavier, orthogonal, uniform or torch",
     {"uniform", "torch", "xavier", "orthogonal"},
     {TG_INIT_UNIFORM, TG_INIT_TORCH, TG_INIT_XAVIER, TG_INIT_ORTHOGONAL}},
    {OPT_SPLIT, "val or all", {"val", "all"}, {0, 1}},
};

/* When s takes a word: the value v stands for in *value, or EXIT_USAGE (message printed)
   if v is none of its words. EXIT_OK, *value untouched, for any other option. */
static int parse_word(charlm_cmd cmd, const opt_spec *s, const char *v, int *value)
{
    for (size_t i = 0; i < sizeof WORD_OPTS / sizeof WORD_OPTS[0]; i++) {
        const word_opt *w = &WORD_OPTS[i];
        if (w->id != s->id)
            continue;
        for (int k = 0; w->words[k]; k++) {
            if (strcmp(v, w->words[k]) == 0) {
                *value = w->values[k];
                return EXIT_OK;
            }
        }
        return bad_value(cmd, s->name, w->want, v);
    }
    return EXIT_OK;
}

/* Strings, flags and words here; numbers in set_number. */
static int set_value(charlm_cmd cmd, const opt_spec *s, const char *v, charlm_opts *o)
{
    charlm_config *c = &o->cfg;
    int word = 0;
    int rc = parse_word(cmd, s, v, &word);
    if (rc != EXIT_OK)
        return rc;
    switch (s->id) {
    case OPT_DATA: o->data = v; break;
    case OPT_MODEL: o->model = v; break;
    case OPT_SAVE: o->save = v; break;
    case OPT_RESUME: o->resume = v; break;
    case OPT_LOG: o->log = v; break;
    case OPT_PLOT: o->plot = v; break;
    case OPT_PRIME: o->prime = v; break;
    case OPT_PRIME_FILE: o->prime_file = v; break;
    case OPT_SAVE_BEST: o->save_best = v; break;
    case OPT_INIT_FROM: o->init_from = v; break;
    case OPT_STATEFUL: o->stateful = true; break;
    case OPT_PRESET: break;                       /* applied first, by apply_preset */
    case OPT_INTERACTIVE: o->interactive = true; break;
    case OPT_VOCAB: o->vocab = (tg_vocab_kind)word; break;
    case OPT_UNKNOWN: o->unknown = (tg_unknown)word; break;
    case OPT_LR_SCHEDULE: o->lr_schedule = (tg_schedule_kind)word; break;
    case OPT_VAL_MODE: o->val_stateful = word; break;
    case OPT_INIT: c->init = (tg_init_kind)word; break;
    case OPT_SPLIT: o->split = v; break;          /* "val" or "all", checked above */
    case OPT_QUIET: o->quiet = true; break;
    case OPT_ARGMAX: o->argmax = true; break;
    case OPT_FORGET_BIAS: c->forget_bias_one = true; break;
    case OPT_CELL: o->cell_name = v; break;
    case OPT_PLUGIN: return plugin_load(v);
    case OPT_OPTIM: {
        int k = tg_optim_kind_parse(v);
        if (k < 0)
            return bad_value(cmd, s->name, "rmsprop, adam, adamw, sgd or adagrad", v);
        c->optim = (tg_optim_kind)k;
        break;
    }
    default:
        return set_number(cmd, s, v, o);
    }
    return EXIT_OK;
}

/* Options that need or exclude others. EXIT_OK or EXIT_USAGE (message printed). */
static int check_combinations(charlm_cmd cmd, const charlm_opts *o)
{
    if ((cmd == CMD_SAMPLE || cmd == CMD_EVAL) && !o->model) {
        fprintf(stderr, "charlm %s: --model FILE is required (see charlm %s --help)\n",
                cmd_name(cmd), cmd_name(cmd));
        return EXIT_USAGE;
    }
    if (cmd == CMD_TRAIN && o->init_from && o->resume) {
        fprintf(stderr, "charlm train: --init-from starts a new run and --resume continues "
                        "one: give one of them\n");
        return EXIT_USAGE;
    }
    if (cmd == CMD_SAMPLE && o->prime_file && o->given[OPT_PRIME]) {
        fprintf(stderr, "charlm sample: give --prime or --prime-file, not both\n");
        return EXIT_USAGE;
    }
    if (cmd == CMD_SAMPLE && o->interactive && (o->beam > 0 || strcmp(o->prime, "-") == 0 ||
                                                 (o->prime_file && !strcmp(o->prime_file, "-")))) {
        fprintf(stderr, "charlm sample: --interactive reads standard input itself and "
                        "samples (no --beam, no --prime -)\n");
        return EXIT_USAGE;
    }
    if (cmd == CMD_TRAIN && o->save_every > 0 && !o->save) {
        fprintf(stderr, "charlm train: --save-every needs --save FILE\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The long options cmd takes, numbered 256.. in by_val's order. Returns their count. */
static int option_table(charlm_cmd cmd, struct option *longopts, const opt_spec **by_val)
{
    int n = 0;
    for (int i = 0; i < NSPECS; i++) {
        if (!(SPECS[i].cmds & (1u << cmd)))
            continue;
        longopts[n] = (struct option){SPECS[i].name,
                                      SPECS[i].arg ? required_argument : no_argument, NULL,
                                      256 + n};
        by_val[n] = &SPECS[i];
        n++;
    }
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    return n;
}

/* Explains why getopt refused arg (an unknown option, or one of another command). */
static int report_bad_option(charlm_cmd cmd, const char *arg)
{
    const char *c = cmd_name(cmd);
    if (optopt == 0 && strncmp(arg, "--", 2) == 0) {
        char name[64];
        snprintf(name, sizeof name, "%s", arg + 2);
        char *eq = strchr(name, '=');
        if (eq)
            *eq = '\0';
        for (int i = 0; i < NSPECS; i++) {
            if (strcmp(SPECS[i].name, name) == 0) {
                fprintf(stderr, "charlm %s: option --%s does not apply to '%s' (see charlm %s "
                                "--help)\n", c, name, c, c);
                return EXIT_USAGE;
            }
        }
        fprintf(stderr, "charlm %s: unknown or ambiguous option '--%s' (see charlm %s "
                        "--help)\n", c, name, c);
    } else if (optopt) {
        fprintf(stderr, "charlm %s: unknown option '-%c' (see charlm %s --help)\n", c, optopt,
                c);
    } else {
        fprintf(stderr, "charlm %s: unknown option '%s' (see charlm %s --help)\n", c, arg, c);
    }
    return EXIT_USAGE;
}

/* Applies argv's options to o in order. EXIT_OK, -1 after printing --help, or EXIT_USAGE
   (message printed). */
static int parse_args(charlm_cmd cmd, int argc, char **argv, const struct option *longopts,
                      const opt_spec *const *by_val, int n, charlm_opts *o)
{
    opterr = 0;
    optind = 1;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, ":h", longopts, &idx);
        if (c == -1)
            break;
        if (c == ':') {
            fprintf(stderr, "charlm %s: option %s needs a value (see charlm %s --help)\n",
                    cmd_name(cmd), argv[optind - 1], cmd_name(cmd));
            return EXIT_USAGE;
        }
        if (c == '?')
            return report_bad_option(cmd, argv[optind - 1]);
        if (c != 'h' && (c < 256 || c >= 256 + n))
            continue;
        const opt_spec *s = c == 'h' ? NULL : by_val[c - 256];
        if (!s || s->id == OPT_HELP) {
            options_usage(stdout, cmd);
            return -1;
        }
        o->given[s->id] = true;
        int rc = set_value(cmd, s, s->arg ? optarg : NULL, o);
        if (rc != EXIT_OK)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "charlm %s: unexpected argument '%s' (see charlm %s --help)\n",
                cmd_name(cmd), argv[optind], cmd_name(cmd));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* When argv names a preset (--preset NAME or --preset=NAME), applies its options first, as
   if typed before the others. EXIT_OK or EXIT_USAGE (message printed). */
static int apply_preset(charlm_cmd cmd, int argc, char **argv, const struct option *longopts,
                        const opt_spec *const *by_val, int n, charlm_opts *o)
{
    const char *name = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
            name = argv[i + 1];
        else if (strncmp(argv[i], "--preset=", 9) == 0)
            name = argv[i] + 9;
    }
    if (!name || cmd != CMD_TRAIN)
        return EXIT_OK;            /* parse_args reports --preset given to another command */
    const preset *p = preset_find(name);
    if (!p)
        return bad_value(cmd, "preset", "a preset listed by 'charlm train --help'", name);
    char *pargv[64] = {"preset"};
    int pargc = 1;
    for (const char *const *a = p->args; *a && pargc < 63; a++)
        pargv[pargc++] = (char *)*a;   /* getopt permutes pointers, never the strings */
    return parse_args(cmd, pargc, pargv, longopts, by_val, n, o);
}

int options_parse(charlm_cmd cmd, int argc, char **argv, charlm_opts *o)
{
    defaults(cmd, o);
    struct option longopts[NSPECS + 1];
    const opt_spec *by_val[NSPECS];
    int n = option_table(cmd, longopts, by_val);
    int rc = apply_preset(cmd, argc, argv, longopts, by_val, n, o);
    if (rc == EXIT_OK)
        rc = parse_args(cmd, argc, argv, longopts, by_val, n, o);
    if (rc != EXIT_OK)
        return rc;
    rc = check_combinations(cmd, o);
    if (rc != EXIT_OK)
        return rc;
    o->cfg.cell = tg_cell_type_find(o->cell_name);
    if (!o->cfg.cell) {
        char names[512];
        cell_types_list(names, sizeof names);
        fprintf(stderr, "charlm %s: --cell: '%s' is not a registered cell type (registered: "
                "%s; --plugin FILE.so loads more)\n", cmd_name(cmd), o->cell_name, names);
        return EXIT_USAGE;
    }
    if (!o->data)
        o->data = default_data_path();
    return EXIT_OK;
}

const char *default_data_path(void)
{
    static const char rel[] = "examples/data/tinyshakespeare.txt";
    static char buf[PATH_MAX + 64];
    if (access(rel, R_OK) == 0)
        return rel;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            /* build/examples/charlm -> ../../examples/data */
            snprintf(buf, sizeof buf, "%s/../../%s", exe, rel);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return rel;
}

void apply_threads(const charlm_opts *o)
{
    int n = o->threads;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    tg_set_num_threads(n);
}
