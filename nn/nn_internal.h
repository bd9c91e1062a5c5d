/* nn/nn_internal.h: helpers shared by the nn/ files (not public). */
#ifndef TG_NN_NN_INTERNAL_H
#define TG_NN_NN_INTERNAL_H

#include <stddef.h>

#include "autograd/autograd_internal.h"  /* tg_fail, tg_arena_alloc */
#include "nn/nn.h"

/* True when t is a 2-D tensor of shape (rows, cols) and dtype. */
bool nn_is_matrix(const tg_tensor *t, tg_dtype dtype, int64_t rows, int64_t cols);

/* Checks a cell step's operands: x (B,I), h (B,H) and, when c is given, c (B,H).
   NULL operands pass (the ops report them). On a mismatch records TG_ERR_SHAPE with a
   message naming who and the shapes, and returns false. */
bool nn_check_step(tg_tape *tape, const char *who, const tg_tensor *x, const tg_tensor *h,
                   const tg_tensor *c, int input_size, int hidden_size);

#endif /* TG_NN_NN_INTERNAL_H */
