/* examples/gradcheck.c: the smallest gradient check of a user-defined function. */
#include <stdio.h>

#include "tapegrad.h"

/* The function to check, written with ops: f(x, w) = mean(sigmoid(x @ w) * tanh(x @ w)).
   gradcheck calls it many times on fresh tapes, so it must be deterministic. */
typedef struct inputs { tg_tensor *x, *w; } inputs;

static tg_tensor *f(tg_tape *tape, void *user)
{
    inputs *in = user;
    tg_tensor *z = tg_matmul(tape, in->x, in->w);                        /* (3,4)@(4,2) */
    return tg_mean(tape, tg_mul(tape, tg_sigmoid(tape, z), tg_tanh(tape, z)));
}

int main(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    inputs in = { tg_tensor_new(TG_F64, 2, (const int64_t[]){ 3, 4 }),   /* float64 only */
                  tg_tensor_new(TG_F64, 2, (const int64_t[]){ 4, 2 }) };
    if (!in.x || !in.w)
        return 1;
    tg_tensor_fill_uniform(in.x, &rng, -1, 1);
    tg_tensor_fill_uniform(in.w, &rng, -1, 1);
    tg_tensor_requires_grad(in.x);                 /* checked tensors need a gradient */
    tg_tensor_requires_grad(in.w);

    tg_tensor *checked[2] = { in.x, in.w };
    tg_gradcheck_result r;
    tg_status st = tg_gradcheck(checked, 2, f, &in, NULL, &r, NULL);     /* default opts */
    printf("checked %lld elements: worst relative error %.2e (analytic %.6g, numeric %.6g)"
           " -> %s\n", (long long)r.checked, r.max_rel_err, r.analytic, r.numeric,
           st == TG_OK && r.passed ? "gradients OK" : "MISMATCH");
    tg_tensor_free(in.x);
    tg_tensor_free(in.w);
    return st == TG_OK && r.passed ? 0 : 1;
}
