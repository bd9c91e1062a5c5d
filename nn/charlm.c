/* nn/charlm.c: the character-level language model: tokens -> one-hot or embedding ->
   recurrent stack -> linear head -> cross-entropy over every time step. */
#include <stdint.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "tensor/tensor_internal.h"

/* Legend: B batch, T time, I input (V or E), H hidden, V vocab, E embedding. */

tg_status tg_charlm_init(tg_charlm *m, tg_params *ps, const tg_charlm_config *cfg,
                         const tg_init *init, tg_rng *rng)
{
    const char *who = "charlm_init";
    if (!m || !ps || !cfg || !rng)
        return tg_error_set(TG_ERR_NULL, "%s: %s is NULL", who,
                            !m ? "model" : !ps ? "params" : !cfg ? "config" : "rng");
    if (cfg->vocab < 1 || cfg->hidden < 1 || cfg->embed < 0)
        return tg_error_set(TG_ERR_ARG, "%s: vocab %d, hidden %d, embed %d (want vocab and "
                            "hidden >= 1, embed >= 0)", who, cfg->vocab, cfg->hidden,
                            cfg->embed);
    if (!cfg->cell)
        return tg_error_set(TG_ERR_ARG, "%s: NULL cell type", who);
    if (cfg->layers < 1 || cfg->layers > TG_MAX_LAYERS)
        return tg_error_set(TG_ERR_ARG, "%s: %d layers (must be 1..%d)", who, cfg->layers,
                            TG_MAX_LAYERS);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return tg_error_set(TG_ERR_ARG, "%s: dropout %g outside [0,1)", who, cfg->dropout);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    tg_status st = TG_OK;
    if (cfg->embed > 0)
        st = tg_embedding_init(&m->embedding, ps, "embed", cfg->vocab, cfg->embed, init,
                               rng);                                             /* (V,E) */
    int in = cfg->embed > 0 ? cfg->embed : cfg->vocab;
    int stack_first = tg_params_count(ps);
    if (st == TG_OK)
        st = tg_rnn_stack_init(&m->rnn, ps, "rnn", cfg->cell, cfg->layers, in, cfg->hidden,
                               cfg->dropout, init, rng);
    int stack_end = tg_params_count(ps);
    if (st == TG_OK)
        st = tg_linear_init(&m->head, ps, "head", cfg->hidden, cfg->vocab, cfg->hidden,
                            init, rng);                                         /* H -> V */
    /* orthogonal: everything above was Xavier; now the recurrent blocks */
    if (st == TG_OK && init && init->kind == TG_INIT_ORTHOGONAL)
        st = tg_init_orthogonal_stack(ps, stack_first, stack_end, cfg->hidden,
                                      cfg->embed > 0 ? 0 : cfg->vocab, "rnn.0.", rng);
    if (st != TG_OK) {
        tg_charlm_deinit(m);
        return tg_error_wrap("%s", who);
    }
    return TG_OK;
}

void tg_charlm_deinit(tg_charlm *m)
{
    if (!m)
        return;
    tg_rnn_stack_deinit(&m->rnn);
    memset(m, 0, sizeof *m);
}

/* The model's input for one time step: tokens (B ids, already checked) as a one-hot
   (B,V) tape tensor, or their embedding rows (B,E). */
static tg_tensor *step_input(tg_tape *tape, const tg_charlm *m, const int32_t *tokens,
                             int64_t B)
{
    if (m->embedding)
        return tg_embedding(tape, m->embedding, tokens, B);
    return tg_one_hot(tape, m->head.w->dtype, tokens, B, m->cfg.vocab);
}

/* Checks a state against the model for batch B: layers, and each of the cell type's
   state tensors (B,H) of dtype. Records TG_ERR_SHAPE naming who and returns false on a
   mismatch. */
static bool check_state(tg_tape *tape, const char *who, const tg_charlm *m,
                        const tg_stack_state *state, int64_t B)
{
    tg_dtype dt = m->head.w->dtype;
    int ns = m->rnn.type->nstate;
    if (state->layers != m->rnn.layers || state->nstate != ns) {
        tg_fail(tape, TG_ERR_SHAPE, who, "state has %d layers of %d tensors, the model %d "
                "of %d", state->layers, state->nstate, m->rnn.layers, ns);
        return false;
    }
    for (int l = 0; l < state->layers; l++) {
        for (int k = 0; k < ns; k++) {
            if (!tg_is_matrix(state->tensors[l][k], dt, B, m->cfg.hidden)) {
                tg_fail(tape, TG_ERR_SHAPE, who, "state %d of layer %d is not (%lld,%d) %s",
                        k, l, (long long)B, m->cfg.hidden,
                        dt == TG_F64 ? "float64" : "float32");
                return false;
            }
        }
    }
    return true;
}

/* Checks n token ids against [0,V); records TG_ERR_ARG naming the first bad one. */
static bool check_ids(tg_tape *tape, const char *who, const char *what, const int32_t *ids,
                      int64_t n, int64_t V)
{
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) {
            tg_fail(tape, TG_ERR_ARG, who, "%s[%lld] = %d is outside the vocabulary [0,%lld)",
                    what, (long long)i, (int)ids[i], (long long)V);
            return false;
        }
    }
    return true;
}

/* A tape copy of the caller's tensor t (NULL stays NULL). The ops of the first step read
   the initial state again during backward, and the caller's tensors are overwritten with
   the final state before that, so the tape must hold its own copy. */
static tg_tensor *tape_copy(tg_tape *tape, const tg_tensor *t)
{
    if (!t)
        return NULL;
    tg_tensor *c = tg_tape_tensor(tape, t->dtype, t->ndim, t->shape);
    if (c)
        memcpy(c->data, t->data, (size_t)t->numel * tg_dtype_size(t->dtype));
    return c;
}

/* The working state for a pass: dst's tensors are tape copies of src's. */
static bool state_on_tape(tg_tape *tape, const tg_stack_state *src, tg_stack_state *dst)
{
    *dst = *src;
    for (int l = 0; l < src->layers; l++) {
        for (int k = 0; k < src->nstate; k++) {
            dst->tensors[l][k] = tape_copy(tape, src->tensors[l][k]);
            if (!dst->tensors[l][k])
                return false;
        }
    }
    return true;
}

tg_tensor *tg_charlm_loss(tg_tape *tape, const tg_charlm *m, const int32_t *inputs,
                          const int32_t *targets, int64_t B, int64_t T,
                          tg_stack_state *state, bool training, tg_rng *rng)
{
    const char *who = "charlm_loss";
    if (!m || !inputs || !targets || !state)
        return tg_fail(tape, TG_ERR_NULL, who, "NULL %s",
                       !m ? "model" : !inputs ? "inputs" : !targets ? "targets" : "state");
    if (!m->head.w)
        return tg_fail(tape, TG_ERR_ARG, who, "the model is not initialised");
    if (B < 1 || T < 1)
        return tg_fail(tape, TG_ERR_ARG, who, "B = %lld, T = %lld (both must be >= 1)",
                       (long long)B, (long long)T);
    if (T > INT32_MAX || B > INT64_MAX / T / 64)
        return tg_fail(tape, TG_ERR_ARG, who, "B = %lld, T = %lld: too large", (long long)B,
                       (long long)T);
    int64_t V = m->cfg.vocab, n = B * T;
    if (!check_state(tape, who, m, state, B) ||
        !check_ids(tape, who, "inputs", inputs, n, V) ||
        !check_ids(tape, who, "targets", targets, n, V))
        return NULL;

    /* time-major copies: row t*B + b is stream b at time t */
    int32_t *in_tm = tg_arena_alloc(tape, (size_t)n * sizeof *in_tm, false, who);  /* (T,B) */
    int32_t *tg_tm = tg_arena_alloc(tape, (size_t)n * sizeof *tg_tm, false, who);  /* (T,B) */
    tg_tensor **tops = tg_arena_alloc(tape, (size_t)T * sizeof *tops, false, who); /* T of (B,H) */
    if (!in_tm || !tg_tm || !tops)
        return NULL;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++) {
            in_tm[t * B + b] = inputs[b * T + t];
            tg_tm[t * B + b] = targets[b * T + t];
        }
    }

    tg_stack_state cur;                            /* stepped on the tape; copied back */
    if (!state_on_tape(tape, state, &cur))
        return NULL;
    for (int64_t t = 0; t < T; t++) {
        tg_tape_push_scope_index(tape, "t=", t);     /* errors read "t=17/rnn.1/..." */
        tg_tensor *x = step_input(tape, m, in_tm + t * B, B);                 /* (B,I) */
        tops[t] = tg_rnn_stack_step(tape, &m->rnn, x, &cur, training, rng);   /* (B,H) */
        tg_tape_pop_scope(tape);
        if (!tops[t])
            return NULL;
    }
    tg_tensor *hs     = tg_concat_n(tape, tops, (int)T, 0);                   /* (T*B,H) */
    tg_tape_push_scope(tape, "head");
    tg_tensor *logits = tg_linear_apply(tape, &m->head, hs);                  /* (T*B,V) */
    tg_tape_pop_scope(tape);
    tg_tensor *loss   = tg_cross_entropy(tape, logits, tg_tm);                /* (1) */
    if (loss && tg_stack_state_copy(state, &cur) != TG_OK)
        return tg_fail(tape, TG_ERR_SHAPE, who, "cannot copy the final state out");
    return loss;
}

tg_tensor *tg_charlm_step(tg_tape *tape, const tg_charlm *m, const int32_t *tokens,
                          int64_t B, tg_stack_state *state)
{
    const char *who = "charlm_step";
    if (!m || !tokens || !state)
        return tg_fail(tape, TG_ERR_NULL, who, "NULL %s",
                       !m ? "model" : !tokens ? "tokens" : "state");
    if (!m->head.w)
        return tg_fail(tape, TG_ERR_ARG, who, "the model is not initialised");
    if (B < 1)
        return tg_fail(tape, TG_ERR_ARG, who, "B = %lld (must be >= 1)", (long long)B);
    if (!check_state(tape, who, m, state, B) ||
        !check_ids(tape, who, "tokens", tokens, B, m->cfg.vocab))
        return NULL;
    tg_stack_state cur;
    if (!state_on_tape(tape, state, &cur))
        return NULL;
    tg_tensor *x      = step_input(tape, m, tokens, B);                       /* (B,I) */
    tg_tensor *top    = tg_rnn_stack_step(tape, &m->rnn, x, &cur, false, NULL); /* (B,H) */
    tg_tape_push_scope(tape, "head");
    tg_tensor *logits = tg_linear_apply(tape, &m->head, top);                 /* (B,V) */
    tg_tape_pop_scope(tape);
    if (logits && tg_stack_state_copy(state, &cur) != TG_OK)
        return tg_fail(tape, TG_ERR_SHAPE, who, "cannot copy the state out");
    return logits;
}
