/* nn/nn.h: layers, RNN/LSTM/GRU cells composed from ops as the illustrated guide writes
   them, stacked recurrent networks, and a character-level language model. */
#ifndef TG_NN_NN_H
#define TG_NN_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "autograd/autograd.h"
#include "autograd/params.h"
#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Legend: B batch, T time, I input, H hidden, V vocab, E embedding.
   Errors: functions that take a tape record a sticky error on it (autograd.h); every
   other function here that returns NULL or a status other than TG_OK leaves its reason
   for the calling thread in tg_last_error() (tensor/tensor.h). */

/* ---- initialisation ------------------------------------------------------- */
typedef enum tg_init_kind {
    TG_INIT_TORCH,    /* PyTorch's default: uniform(-1/sqrt(n), 1/sqrt(n)), n = hidden size
                         for cells, fan_in for a plain linear; biases too              */
    TG_INIT_UNIFORM,  /* uniform(-scale, scale) for weights and biases (char-rnn: 0.08) */
    TG_INIT_XAVIER,   /* Glorot uniform: +-sqrt(6/(fan_in+fan_out)) weights, zero biases */
    TG_INIT_ORTHOGONAL /* Xavier, then (tg_charlm_init) every recurrent weight's H x H block
                          that multiplies h_{t-1} a random orthogonal matrix and, with
                          one-hot input, the first layer's input rows N(0,1): an embedding
                          table's init. Layers outside a char-LM get Xavier; apply
                          tg_init_orthogonal to their recurrent blocks yourself. */
} tg_init_kind;

typedef struct tg_init {
    tg_init_kind kind;
    double scale;          /* TG_INIT_UNIFORM's bound (0 means char-rnn's 0.08) */
    bool forget_bias_one;  /* LSTM: set the forget gate's bias to 1 afterwards */
} tg_init;

/* ---- linear --------------------------------------------------------------- */
typedef struct tg_linear {
    tg_tensor *w;   /* (in, out) */
    tg_tensor *b;   /* (out)     */
} tg_linear;

/* Adds "<name>.w" (in,out) and "<name>.b" (out) to ps and initialises them from rng.
   fan is the n of TG_INIT_TORCH (pass in for a plain layer, H for a cell's gate).
   init NULL means TG_INIT_TORCH. Values are drawn in a fixed order (w row-major, then b),
   so a seed always gives the same parameters.
   Returns TG_ERR_NULL / TG_ERR_ARG (bad sizes, a name that is taken or longer than
   61 bytes, a negative scale, an unknown init kind) / TG_ERR_NOMEM; each with its own
   reason in tg_last_error(). */
tg_status tg_linear_init(tg_linear *l, tg_params *ps, const char *name, int in, int out,
                         int fan, const tg_init *init, tg_rng *rng);

/* Adds an embedding table name (vocab, dim) to ps and stores it in *table: N(0,1) for
   TG_INIT_TORCH (torch.nn.Embedding), U(-scale, scale) for TG_INIT_UNIFORM, Glorot
   uniform over (vocab, dim) for TG_INIT_XAVIER. Returns TG_ERR_* as tg_linear_init; the
   reason in tg_last_error(). */
tg_status tg_embedding_init(tg_tensor **table, tg_params *ps, const char *name, int vocab,
                            int dim, const tg_init *init, tg_rng *rng);

/* Overwrites the leading n x n block of w (rows 0..n-1 of a (rows >= n, n) matrix) with a
   random orthogonal matrix: modified Gram-Schmidt, in double, on the columns of an n x n
   standard normal draw (n*n values from rng, row-major). Rows below n are untouched.
   Returns TG_ERR_NULL / TG_ERR_ARG (w not 2-D with n columns and >= n rows, n < 1) /
   TG_ERR_NOMEM, with the reason in tg_last_error(). */
tg_status tg_init_orthogonal(tg_tensor *w, int64_t n, tg_rng *rng);

/* x @ w + b: x (B,in) -> (B,out). NULL + sticky error on failure. */
tg_tensor *tg_linear_apply(tg_tape *tape, const tg_linear *l, tg_tensor *x);

/* A pointwise op such as tg_sigmoid or tg_tanh. */
typedef tg_tensor *(*tg_unary_op)(tg_tape *tape, tg_tensor *x);

/* One gate of a cell: act(x @ w + b), reported to the tape's observer under name
   (which may be NULL). x (B,in) -> (B,out), owned by the tape.
   NULL + sticky error on failure (TG_ERR_NULL for a NULL act or layer). */
tg_tensor *tg_gate(tg_tape *tape, tg_unary_op act, const tg_linear *l, tg_tensor *x,
                   const char *name);

/* ---- cells -----------------------------------------------------------------
 * combine = concat(prev_h, x) along dim 1, so the first H rows of every weight
 * multiply prev_h and the next I rows multiply x. Every weight is (H+I, H).
 */
typedef struct tg_rnn_cell {
    int input_size, hidden_size;
    tg_linear layer;                          /* (H+I) -> H */
} tg_rnn_cell;

typedef struct tg_lstm_cell {
    int input_size, hidden_size;
    tg_linear forget, candidate, input, output; /* each (H+I) -> H */
} tg_lstm_cell;

typedef struct tg_gru_cell {
    int input_size, hidden_size;
    tg_linear update, reset, candidate;         /* each (H+I) -> H */
} tg_gru_cell;

typedef struct tg_lstm_state {
    tg_tensor *h;   /* (B,H) */
    tg_tensor *c;   /* (B,H) */
} tg_lstm_state;

/* Parameters are named "<prefix>.<gate>.w" / ".b". Return TG_ERR_* as tg_linear_init; the
   reason in tg_last_error(). */
tg_status tg_rnn_cell_init(tg_rnn_cell *cell, tg_params *ps, const char *prefix,
                           int input_size, int hidden_size, const tg_init *init, tg_rng *rng);
tg_status tg_lstm_cell_init(tg_lstm_cell *cell, tg_params *ps, const char *prefix,
                            int input_size, int hidden_size, const tg_init *init, tg_rng *rng);
tg_status tg_gru_cell_init(tg_gru_cell *cell, tg_params *ps, const char *prefix,
                           int input_size, int hidden_size, const tg_init *init, tg_rng *rng);

/* One time step. x (B,I), h and c (B,H) -> the new h (and c), owned by the tape.
   Intermediate gates are reported to the tape's observer under their guide names
   ("forget", "candidate", "input", "cell", "output", "hidden"; GRU: "update", "reset",
   "candidate", "hidden"). NULL (both fields NULL for LSTM) + sticky error on failure. */
tg_tensor    *tg_rnn_cell_step(tg_tape *tape, const tg_rnn_cell *cell, tg_tensor *x,
                               tg_tensor *h);
tg_lstm_state tg_lstm_cell_step(tg_tape *tape, const tg_lstm_cell *cell, tg_tensor *x,
                                tg_lstm_state s);
tg_tensor    *tg_gru_cell_step(tg_tape *tape, const tg_gru_cell *cell, tg_tensor *x,
                               tg_tensor *h);

/* ---- cell types --------------------------------------------------------------
 * A recurrent cell type: everything that runs a recurrent network (stacks, the char-LM
 * model, checkpoints, the recorder and viewer, charlm's commands) takes one of these, so
 * a user's cell gets all of it. A type says how big its cell struct is, how to build one
 * (its parameters go into a tg_params under a prefix) and how to run one time step.
 * The library registers "rnn", "lstm" and "gru" (wrapping tg_rnn_cell_step and friends)
 * and its zoo; a program or a plug-in adds its own with tg_cell_type_register.
 *
 *     static void my_step(tg_tape *t, const void *cell, tg_tensor *x,
 *                         tg_tensor *const *state, tg_tensor **next) { ... }
 *     static const tg_cell_type my_type = { "mycell", 1, sizeof(my_cell), my_init, my_step };
 *     tg_cell_type_register(&my_type);     // then --cell mycell, checkpoints, the viewer
 */
typedef struct tg_cell_type {
    const char *name;     /* unique, [a-z0-9_]+, stored in checkpoints                  */
    int nstate;           /* state tensors per layer, each (B,H); state[0] is h         */
    size_t size;          /* bytes of the cell struct that init fills and step reads    */
    /* Builds one cell into the zeroed `size` bytes at cell: adds its parameters to ps,
       named "<prefix>.<...>", drawn from rng as init says (NULL: TG_INIT_TORCH). A cell
       reads input_size (I) and has hidden_size (H) units. Returns a tg_status. */
    tg_status (*init)(void *cell, tg_params *ps, const char *prefix, int input_size,
                      int hidden_size, const tg_init *init, tg_rng *rng);
    /* x (B,I), state[0..nstate-1] -> next[0..nstate-1] (tape-owned); NULLs + the tape's
       sticky error on failure. Gates reported with tg_name show up in the recorder. */
    void (*step)(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                 tg_tensor **next);
} tg_cell_type;

#define TG_MAX_CELL_STATE 4    /* the largest nstate a type may have         */
#define TG_MAX_CELL_TYPES 64   /* types registered beyond the built-in ones  */

/* Adds type to the process-wide registry, so tg_cell_type_find(type->name) returns it.
   The library keeps the pointer: type (and its name) must stay valid and unchanged for
   the rest of the process (a static const struct, as in a plug-in's constructor).
   Thread-safe. TG_ERR_NULL for a NULL type; TG_ERR_ARG when the name is taken, is not
   1-63 characters of [a-z0-9_], nstate is outside 1..TG_MAX_CELL_STATE, size is 0, init
   or step is NULL, or the registry is full; the reason is in tg_last_error(). */
tg_status           tg_cell_type_register(const tg_cell_type *type);
/* The registered type called name, or NULL (unknown name, or NULL). */
const tg_cell_type *tg_cell_type_find(const char *name);
/* The number of registered types, built-in ones included, and the i-th of them
   (0 <= i < count, in registration order, the built-in ones first; else NULL). */
int                 tg_cell_type_count(void);
const tg_cell_type *tg_cell_type_at(int i);

/* ---- stacked recurrent network --------------------------------------------- */
#define TG_MAX_LAYERS 16

/* Rows row0..row0+rows-1 of the parameter w multiply h_{t-1} (a 1-D w counts as a
   column: its elements are rows). offset is where the cell struct holds the pointer w,
   or SIZE_MAX when it holds it nowhere (weight drop cannot reach that parameter). */
typedef struct tg_recurrent_rows {
    tg_tensor *w;
    int64_t row0, rows;
    size_t offset;
} tg_recurrent_rows;

typedef struct tg_rnn_stack {
    const tg_cell_type *type;       /* every layer's cell type                    */
    int layers, input_size, hidden_size;
    double dropout;                 /* between layers, in training only           */
    void *cells[TG_MAX_LAYERS];     /* layer l's cell struct (type->size bytes, one
                                       block allocated by init, freed by deinit);
                                       layer 0 reads I, the others H              */
    char scope[48];                 /* "<prefix>.": layer l's errors read "<prefix>.l: " */
    /* Recurrent regularisers: 0 after init (off); set them before stepping, each in
       [0,1). Masks are drawn from the step's rng, serially, in training only.        */
    double var_dropout;   /* variational dropout (Gal & Ghahramani 2016): one mask per
                             window on each layer's input and on the h its cell reads  */
    double zoneout;       /* zoneout (Krueger et al. 2016) of every state tensor: each
                             unit keeps its previous value with this probability, a fresh
                             mask per step; at evaluation the expectation              */
    double weight_drop;   /* weight drop (Merity et al. 2017): DropConnect on the rows
                             tg_rnn_stack_recurrent finds, one mask per window          */
    struct tg_stack_probe *probe;   /* internal: each layer's parameters and the
                                       recurrent rows found in them; freed by deinit  */
} tg_rnn_stack;

/* The regularisers' draws for one window of steps: variational dropout's masks and the
   cells with weight-dropped recurrent weights. Tape-owned. */
typedef struct tg_stack_window {
    tg_tensor *input_mask[TG_MAX_LAYERS];   /* (B,I) layer 0, (B,H) above; NULL: off   */
    tg_tensor *hidden_mask[TG_MAX_LAYERS];  /* (B,H); NULL: off                        */
    const void *cell[TG_MAX_LAYERS];        /* the struct layer l's step reads: a tape
                                               copy of cells[l] whose recurrent weights
                                               are weight-dropped, or cells[l] itself   */
} tg_stack_window;

/* The recurrent state of every layer: tensors[l][k] is layer l's state k (B,H), k <
   nstate (the type's); tensors[l][0] is h. Slots past nstate are NULL.
   window: NULL until a training step of a stack with var_dropout or weight_drop draws
   the window's masks; the steps after it reuse them. tg_stack_state_new and
   { .layers = L } give NULL and tg_stack_state_copy copies tensors only, so each
   working copy of a caller-owned state (one truncated-BPTT window) draws new masks. */
typedef struct tg_stack_state {
    int layers, nstate;
    tg_tensor *tensors[TG_MAX_LAYERS][TG_MAX_CELL_STATE];
    const tg_stack_window *window;
} tg_stack_state;

/* Builds layers cells of type into s, their parameters named "<prefix>.<l>.<...>" for
   l = 0..layers-1 (1 <= layers <= TG_MAX_LAYERS), drawn in layer order. The cells'
   memory is allocated here, once: release it with tg_rnn_stack_deinit (the parameters
   stay in ps). On failure nothing needs releasing.
   Returns TG_ERR_NULL / TG_ERR_ARG (bad sizes, dropout outside [0,1), a type that is not
   valid) / TG_ERR_NOMEM, or the type's init's status; the reason in tg_last_error(). */
tg_status tg_rnn_stack_init(tg_rnn_stack *s, tg_params *ps, const char *prefix,
                            const tg_cell_type *type, int layers, int input_size,
                            int hidden_size, double dropout, const tg_init *init,
                            tg_rng *rng);
/* Frees the cells' memory and zeroes s (NULL or a zeroed stack: nothing happens). */
void      tg_rnn_stack_deinit(tg_rnn_stack *s);

/* Layer l's recurrent rows: what weight drop masks and variational dropout scales. Found
   the first time they are asked for (by this call or the first training step with
   var_dropout or weight_drop set) by probing the cell: three forward and backward
   passes of one step on a batch of 32 random inputs and states (a fixed seed: no rng is
   used; the parameters' gradients are restored), with h_{t-1} zero, only its even units
   set, and only its odd units set. A row of a 1-D or 2-D parameter of the cell is
   recurrent when its gradient is zero in the first pass and in exactly one of the other
   two: it acts through one unit of h_{t-1} and nothing else drives it. For the library's
   cells that is the rows of a weight over concat(h, x) that multiply h, all of a
   hidden-to-hidden weight, IndRNN's per-unit u, and the classic GRU's reset bias (the
   reset gate acts on h alone); other biases, input weights, peepholes and layer-norm
   gains are not. A user's cell gets the same rule with no declaration. A row a dead
   ReLU silences in all 32 rows of its pass is missed (about 2^-32 for a unit whose
   pre-activation has either sign), and a step that fails gives no rows. To be masked,
   a parameter's tg_tensor pointer must be held in the cell struct (as a member or in a
   member struct such as tg_linear): the step then reads a copy of the struct with the
   masked tensor in its place (tg_recurrent_rows.offset).
   Sets *rows (owned by the stack, valid until deinit) and returns how many; -1 with the
   reason in tg_last_error() for NULL arguments, a bad layer or no memory. Not
   thread-safe against another call or step on the same stack before the first probe. */
int       tg_rnn_stack_recurrent(const tg_rnn_stack *s, int l, const tg_recurrent_rows **rows);

/* One time step through every layer: x (B,I); state holds each layer's state tensors in
   and is updated in place to the new tape-owned tensors. Returns the top layer's h (B,H).
   Dropout (with rng) applies to the input of layers 1.. when training is true, then the
   stack's regularisers: with training, variational dropout multiplies layer l's input
   and the h_{t-1} its cell reads (the state carried on stays unmasked) by the window's
   masks, the cell reads the window's weight-dropped copy of itself, and zoneout mixes
   each new state tensor with the previous one through a fresh mask; without training
   only zoneout acts, as its expectation (no rng needed). Masks are drawn in a fixed
   order (for each layer: input, hidden, weight-drop rows in tg_rnn_stack_recurrent's
   order; then per step dropout and zoneout), serially, so any thread count gives the
   same bits.
   Because its pointers are replaced, step a working copy of a caller-owned state
   (tg_stack_state cur = *owned; ...; tg_stack_state_copy(owned, &cur) to detach, but
   only after tg_backward: backward reads the initial state's values again);
   a NULL tensors[l][k] is read as zeros, and so is a state with nstate 0
   (tg_stack_state cur = { .layers = L } starts from zeros; the step sets its nstate).
   On failure state is left unchanged. Errors: TG_ERR_ARG for a regulariser outside
   [0,1) or, in training, var_dropout or weight_drop with recurrent rows the cell struct
   does not hold (or none); TG_ERR_NOMEM when the probe runs out of memory;
   TG_ERR_NULL for a missing rng in training with dropout, var_dropout, weight_drop or
   zoneout set.
   An error inside layer l names it: "<prefix>.<l>/<gate>: <op>: ...". */
tg_tensor *tg_rnn_stack_step(tg_tape *tape, const tg_rnn_stack *s, tg_tensor *x,
                             tg_stack_state *state, bool training, tg_rng *rng);

/* Caller-owned zero state for batch B: nstate (B,H) tensors per layer (tg_tensor_new);
   free with _free. NULL (reason in tg_last_error) for a bad stack, dtype or batch, or
   when out of memory. */
tg_stack_state *tg_stack_state_new(const tg_rnn_stack *s, tg_dtype dtype, int64_t batch);
void            tg_stack_state_free(tg_stack_state *st);
void            tg_stack_state_zero(tg_stack_state *st);
/* Copies src's tensors' values into dst's (the detach at a TBPTT window boundary).
   Returns TG_ERR_NULL, or TG_ERR_SHAPE when they do not match; the reason in
   tg_last_error(). */
tg_status       tg_stack_state_copy(tg_stack_state *dst, const tg_stack_state *src);

/* ---- character-level language model ----------------------------------------
 * tokens -> (one-hot | embedding) -> rnn stack -> linear head -> logits (.., V)
 */
typedef struct tg_charlm_config {
    const tg_cell_type *cell;  /* e.g. tg_cell_type_find("lstm")           */
    int vocab;       /* V                                        */
    int layers;
    int hidden;      /* H                                        */
    int embed;       /* E; 0 means one-hot input (I = V)         */
    double dropout;  /* the stack's; set the other regularisers in rnn after init */
} tg_charlm_config;

typedef struct tg_charlm {
    tg_charlm_config cfg;
    tg_tensor   *embedding;   /* (V,E), or NULL for one-hot input */
    tg_rnn_stack rnn;
    tg_linear    head;        /* H -> V                           */
} tg_charlm;

/* Builds the model's parameters into ps (which must be empty or hold other names):
   "embed" (V,E) if any, "rnn.<l>.<...>" (the cell type's), "head.w/b". Release the
   model with tg_charlm_deinit (the parameters stay in ps). On failure nothing needs
   releasing. Returns TG_ERR_* as tg_rnn_stack_init (TG_ERR_ARG for a NULL cell type);
   the reason in tg_last_error(). */
tg_status tg_charlm_init(tg_charlm *m, tg_params *ps, const tg_charlm_config *cfg,
                         const tg_init *init, tg_rng *rng);
/* Frees what tg_charlm_init allocated (its stack's cells) and zeroes m. */
void      tg_charlm_deinit(tg_charlm *m);

/* Mean cross-entropy over all B*T positions. inputs and targets are (B,T) row-major
   token ids in [0,V) (row b is a contiguous stream). state (caller-owned, from
   tg_stack_state_new(&m->rnn, dtype, B)) is read as the initial state and, on success,
   overwritten with the final state: the detached carry for truncated BPTT.
   NULL + sticky error on failure (bad token ids are TG_ERR_ARG); an error inside the
   network names the time step and layer, "t=17/rnn.1/forget: gate: ...". */
tg_tensor *tg_charlm_loss(tg_tape *tape, const tg_charlm *m, const int32_t *inputs,
                          const int32_t *targets, int64_t B, int64_t T,
                          tg_stack_state *state, bool training, tg_rng *rng);

/* One step for generation: tokens (B) -> logits (B,V) on the tape; state (caller-owned)
   is advanced in place (copied out of the tape). As in evaluation: dropout, variational
   dropout and weight drop off, zoneout as its expectation. */
tg_tensor *tg_charlm_step(tg_tape *tape, const tg_charlm *m, const int32_t *tokens,
                          int64_t B, tg_stack_state *state);

/* ---- recording named activations ---------------------------------------------
 * A recorder is a tape observer (autograd.h, tg_tape_set_observer) that keeps a copy of
 * every result reported through tg_name, one series per (layer, name): row k of a series
 * is the k-th report of that name in that layer, with the shape of one report (B,H for
 * a cell's gate). Gate viewers and other diagnostics read the series after a forward.
 *
 * Layers are known from the order of the reports: within one time step the cells of a
 * stack report in layer order and a cell reports each of its names once, so a name that
 * repeats within the current group of reports starts the next group, and group g belongs
 * to layer g % layers. Nothing in the cells is special-cased: any step function that
 * names each result once per call is recorded the same way (layers = 1 for a lone cell).
 *
 *     tg_recorder *rec = tg_recorder_new(m.rnn.layers);
 *     tg_recorder_attach(rec, tape);
 *     for (t = 0; t < T; t++) { tg_tape_reset(tape); tg_charlm_step(tape, &m, &ids[t], 1, st); }
 *     tg_series f;
 *     tg_recorder_get(rec, 1, "forget", &f);   // f.rows == T, tg_series_at(&f, t, unit)
 */
typedef struct tg_recorder tg_recorder;

/* A read-only view of one series; data is valid until the next report, clear or free. */
typedef struct tg_series {
    const char *name;             /* as reported (the recorder's copy)            */
    int layer;
    tg_dtype dtype;               /* of the reported tensors                      */
    int ndim;
    int64_t shape[TG_MAX_DIMS];   /* of one report                                */
    int64_t width;                /* elements per report                          */
    int64_t rows;                 /* reports recorded                             */
    const void *data;             /* rows x width values of dtype, row-major      */
} tg_series;

/* A recorder for a stack of layers (1 <= layers <= TG_MAX_LAYERS); free with _free.
   NULL for a bad layer count or when out of memory; the reason in tg_last_error(). */
tg_recorder *tg_recorder_new(int layers);
void         tg_recorder_free(tg_recorder *r);
/* Installs r as tape's observer (replacing any other); r NULL removes the observer.
   r must outlive its attachment. */
void         tg_recorder_attach(tg_recorder *r, tg_tape *tape);
/* The observer function itself (user is the recorder), for programs that chain observers.
   Ignores NULL names and tensors. */
void         tg_recorder_observe(void *user, const char *name, const tg_tensor *t);
/* Forgets every row (keeping the memory) and restarts at layer 0 with the status cleared. */
void         tg_recorder_clear(tg_recorder *r);
/* The first error, after which nothing more is recorded: TG_ERR_NOMEM, TG_ERR_SHAPE (a
   report whose dtype or shape differs from its series'), TG_ERR_ARG (more than 256
   series, or a name longer than 63 bytes); TG_ERR_NULL for a NULL recorder. When not
   TG_OK, the reason is in tg_last_error() (set again by this call). */
tg_status    tg_recorder_status(const tg_recorder *r);
/* Number of series, in order of their first report. */
int          tg_recorder_count(const tg_recorder *r);
/* Describes series i (0 <= i < count) in *out. TG_ERR_NULL / TG_ERR_ARG (bad index);
   the reason in tg_last_error(), as for tg_recorder_get. */
tg_status    tg_recorder_series(const tg_recorder *r, int i, tg_series *out);
/* Describes the series (layer, name) in *out. TG_ERR_NULL / TG_ERR_ARG (no such series). */
tg_status    tg_recorder_get(const tg_recorder *r, int layer, const char *name, tg_series *out);
/* Element j (0 <= j < width) of row (0 <= row < rows) as a double; indices unchecked. */
double       tg_series_at(const tg_series *s, int64_t row, int64_t j);

/* ---- bidirectional layers ------------------------------------------------------
 * Layers of any cell type run over a whole sequence in both directions, as torch's
 * bidirectional=True: layer l's output at step t is concat(forward h_t, backward h_t)
 * (B,2H), which layer l+1 reads. Both directions start from a zero state.
 */
typedef struct tg_bidir_rnn {
    const tg_cell_type *type;
    int layers, input_size, hidden_size;
    void *cell[TG_MAX_LAYERS][2];   /* [l][0] forward, [l][1] backward: type->size bytes,
                                       filled by type->init; layer 0 reads I, others 2H */
} tg_bidir_rnn;

/* Builds the cells "<prefix>.<l>.fwd" and "<prefix>.<l>.bwd" for l = 0..layers-1 into ps
   (drawn in that order). Free with tg_bidir_rnn_deinit (the parameters stay in ps).
   Returns TG_ERR_NULL / TG_ERR_ARG (bad sizes, a type with nstate outside 1..TG_MAX_CELL_STATE) /
   TG_ERR_NOMEM or the type's init status, with a reason in tg_last_error. */
tg_status tg_bidir_rnn_init(tg_bidir_rnn *b, tg_params *ps, const char *prefix,
                            const tg_cell_type *type, int layers, int input_size,
                            int hidden_size, const tg_init *init, tg_rng *rng);
void      tg_bidir_rnn_deinit(tg_bidir_rnn *b);

/* Runs the network over xs[0..T-1] (each (B,I)), writing out[0..T-1] (each (B,2H),
   tape-owned; the forward direction's h in the first H columns).
   Returns TG_OK, or the tape's sticky error with every out[t] NULL. */
tg_status tg_bidir_rnn_forward(tg_tape *t, const tg_bidir_rnn *b, tg_tensor *const *xs,
                               int64_t T, tg_tensor **out);

/* ---- recurrent regularisers ----------------------------------------------------
 * Building blocks of variational dropout (Gal & Ghahramani 2016: one mask per sequence,
 * reused at every step), weight drop (Merity et al. 2017: DropConnect on the recurrent
 * weights, one mask per forward over a window) and zoneout (Krueger et al. 2016). Masks
 * are drawn serially from rng, so a seed gives the same masks for any thread count.
 */

/* An inverted-dropout mask: a tape tensor of dtype and shape whose elements are 0 with
   probability p and 1/(1-p) otherwise, drawn in row-major order; no gradient. Multiply by
   it at every step of a sequence for variational dropout.
   NULL + sticky error: TG_ERR_ARG (p outside [0,1), a bad shape), TG_ERR_NULL (rng). */
tg_tensor *tg_dropout_mask(tg_tape *t, tg_dtype dtype, int ndim, const int64_t *shape,
                           double p, tg_rng *rng);

/* Zoneout of a state: in training, each unit keeps its previous value with probability z
   (a fresh Bernoulli mask d per call): d*prev + (1-d)*next; in evaluation the
   expectation z*prev + (1-z)*next. prev and next (B,H) -> (B,H); z == 0 returns next.
   NULL + sticky error: TG_ERR_ARG (z outside [0,1)), TG_ERR_NULL (operands, or rng in
   training), or the ops' shape errors. */
tg_tensor *tg_zoneout(tg_tape *t, tg_tensor *prev, tg_tensor *next, double z, bool training,
                      tg_rng *rng);

/* DropConnect on rows row0..row0+rows-1 of w (a 1-D w counts as a column): w times an
   inverted-dropout mask that is 1 outside those rows; the gradient reaches w through the
   mask. p == 0 or rows == 0 returns w itself. NULL + sticky error: TG_ERR_ARG (bad rows,
   p outside [0,1), w not 1-D or 2-D), TG_ERR_NULL. */
tg_tensor *tg_weight_drop(tg_tape *t, tg_tensor *w, int64_t row0, int64_t rows, double p,
                          tg_rng *rng);

/* ---- the cell zoo -------------------------------------------------------------
 * Published cells beyond the guide's three, each one file in nn/ composed from ops and
 * registered as a tg_cell_type under the name in brackets. These structs are what the
 * type's init fills and its step reads; parameters are named "<prefix>.<name>" as listed,
 * and weights are (in, out) as everywhere in tapegrad (x @ w). A product of 3H or 4H
 * columns holds its gates as column blocks, in the order given.
 */

/* [lnlstm] Layer-normalised LSTM (Ba, Kiros & Hinton 2016) as PyTorch's fastrnns writes
   it; state h, c. ih.w (I,4H) and hh.w (H,4H), blocks input, forget, candidate, output;
   ln_ih, ln_hh (4H) and ln_cell (H): gamma (1 at init) and beta (0 at init; the forget
   block of ln_ih.beta is 1 with forget_bias_one). The products have no bias: the layer
   norms' betas are the biases. */
typedef struct tg_lnlstm_cell {
    int input_size, hidden_size;
    tg_tensor *w_ih, *w_hh;                     /* (I,4H), (H,4H) */
    tg_tensor *ln_ih_gamma, *ln_ih_beta;        /* (4H) */
    tg_tensor *ln_hh_gamma, *ln_hh_beta;        /* (4H) */
    tg_tensor *ln_cell_gamma, *ln_cell_beta;    /* (H)  */
} tg_lnlstm_cell;

/* [peephole] LSTM with peephole connections (Gers, Schraudolph & Schmidhuber 2002;
   Graves 2013); state h, c. gates.w (H+I,4H) over concat(h, x) and gates.b (4H), blocks
   input, forget, candidate, output; peep_input, peep_forget, peep_output (H): the
   per-unit weights from the cell state (0 at init, so the cell starts as an LSTM). */
typedef struct tg_peephole_cell {
    int input_size, hidden_size;
    tg_linear gates;                            /* (H+I) -> 4H */
    tg_tensor *peep_input, *peep_forget, *peep_output;   /* (H) */
} tg_peephole_cell;

/* [torchgru] The GRU as torch.nn.GRU computes it (reset applied to the recurrent product);
   state h. ih.w (I,3H), ih.b (3H), hh.w (H,3H), hh.b (3H), blocks reset, update,
   candidate: torch's weight_ih_l0 is ih.w transposed, and so on. */
typedef struct tg_torchgru_cell {
    int input_size, hidden_size;
    tg_linear ih, hh;                           /* I -> 3H, H -> 3H */
} tg_torchgru_cell;

/* [mgu] Minimal Gated Unit (Zhou, Wu, Zhang & Zhou 2016); state h. forget and candidate,
   each w (H+I,H) over concat(h, x) (the candidate's over concat(f*h, x)) and b (H). */
typedef struct tg_mgu_cell {
    int input_size, hidden_size;
    tg_linear forget, candidate;                /* each (H+I) -> H */
} tg_mgu_cell;

/* [indrnn] Independently recurrent network (Li, Li, Cook, Zhu & Gao 2018); state h.
   input.w (I,H), input.b (H), and u (H), each unit's weight on its own previous output
   (U(0,1) at init). */
typedef struct tg_indrnn_cell {
    int input_size, hidden_size;
    tg_linear input;                            /* I -> H */
    tg_tensor *u;                               /* (H)    */
} tg_indrnn_cell;

#ifdef __cplusplus
}
#endif
#endif /* TG_NN_NN_H */
