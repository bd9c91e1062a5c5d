/* nn/nn_internal.h: helpers shared by the nn/ files (not public). */
#ifndef TG_NN_NN_INTERNAL_H
#define TG_NN_NN_INTERNAL_H

#include <stddef.h>

#include "autograd/autograd_internal.h"  /* tg_fail, tg_arena_alloc */
#include "nn/nn.h"

/* True when t is a 2-D tensor of shape (rows, cols) and dtype. */
bool tg_is_matrix(const tg_tensor *t, tg_dtype dtype, int64_t rows, int64_t cols);

/* Checks a cell step's operands: x (B,I), h (B,H) and, when c is given, c (B,H).
   NULL operands pass (the ops report them). On a mismatch records TG_ERR_SHAPE with a
   message naming who and the shapes, and returns false. */
bool tg_check_step(tg_tape *tape, const char *who, const tg_tensor *x, const tg_tensor *h,
                   const tg_tensor *c, int input_size, int hidden_size);

/* Adds one gate layer per name, "<prefix>.<name>.w" (H+I, H) and ".b" (H), the shape
   every cell's gates share, in the order given (which fixes the RNG draws).
   Returns TG_ERR_NULL / TG_ERR_ARG (sizes < 1) or tg_linear_init's status. */
tg_status tg_init_gates(tg_params *ps, const char *prefix, int n, const char *const *names,
                        tg_linear *const *gates, int input_size, int hidden_size,
                        const tg_init *init, tg_rng *rng);

/* TG_INIT_ORTHOGONAL's second pass over the params [first, end) a recurrent stack added:
   every gate weight "*.w" of shape (H + I, H) gets an orthogonal recurrent block
   (tg_init_orthogonal) and, when one_hot_rows = I > 0, the input rows of layer 0 (the
   params named layer0 "<prefix>.0.") N(0,1)
   (multiplying a one-hot vector selects one of them: they are an embedding table, and
   N(0,1) is torch.nn.Embedding's init). Draws in parameter order. */
tg_status tg_init_orthogonal_stack(tg_params *ps, int first, int end, int hidden,
                                   int one_hot_rows, const char *layer0, tg_rng *rng);

#endif /* TG_NN_NN_INTERNAL_H */
