/* tests/test_ops_tape.c: autograd semantics and the tape: accumulation, fresh and dead gradients,
   recycled buffers, skipped nodes, grad-disabled recording, tape memory, observers, and
   bit-identical results for any thread count. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

START_TEST(test_fanout_and_repeated_backward_accumulate)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 3, -2 });
    tg_tensor_requires_grad(x);
    /* y = sum(x*x + 3x): dy/dx = 2x + 3 */
    tg_tensor *y = tg_sum(tape, tg_add(tape, tg_mul(tape, x, x), tg_scale(tape, x, 3)));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 9, 0);
    ck_close(tg_tensor_grad_get(x, 1), -1, 0);
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);  /* accumulates, like PyTorch */
    ck_close(tg_tensor_grad_get(x, 0), 18, 0);
    ck_close(tg_tensor_grad_get(x, 1), -2, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Two losses on one tape, one backward each: the second walk starts afresh (what the first
   reached, and the gradient buffers it recycled, do not carry over). */
START_TEST(test_backward_from_two_losses_on_one_tape)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 0.5, -1 });
    tg_tensor_requires_grad(x);
    tg_tensor *y1 = tg_sum(tape, tg_tanh(tape, x));
    tg_tensor *y2 = tg_sum(tape, tg_exp(tape, x));
    ck_assert_int_eq(tg_backward(tape, y1), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 1 - tanh(0.5) * tanh(0.5), 1e-15);
    tg_tensor_zero_grad(x);
    ck_assert_int_eq(tg_backward(tape, y2), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), exp(0.5), 1e-15);
    ck_close(tg_tensor_grad_get(x, 1), exp(-1.0), 1e-15);
    ck_assert_int_eq(tg_backward(tape, y1), TG_OK);   /* adds, like PyTorch */
    ck_close(tg_tensor_grad_get(x, 1), exp(-1.0) + 1 - tanh(1.0) * tanh(1.0), 1e-15);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* More gradient sizes than the backward pool keeps free lists for (40 sizes, 64 bytes
   apart, in one chain): a second backward on the same tape gives the same gradient, not
   that plus the first backward's leftovers. */
START_TEST(test_repeated_backward_with_many_gradient_sizes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 320 }, NULL);
    for (int64_t i = 0; i < 320; i++)
        tg_tensor_set(x, i, 0.001 * (double)i);
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_tanh(tape, x);
    for (int64_t k = 39; k >= 1; k--)   /* 39 more sizes: slices of 8k doubles */
        y = tg_tanh(tape, tg_slice(tape, y, 0, 0, 8 * k));
    tg_tensor *loss = tg_sum(tape, y);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    double first = tg_tensor_grad_get(x, 0);
    tg_tensor_zero_grad(x);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), first, 0);
    ck_close(tg_tensor_grad_get(x, 319), 0, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Gradient buffers of tape tensors start as garbage that the first op to reach them
   overwrites (or zeroes, for ops that add): exercise every kind of first writer on tape
   tensors: GEMM (matmul's A and B, affine's x, weight and bias from other ops), unary,
   binary full-shape and broadcast, the same tensor twice in one op, concat of one tensor
   with itself, reductions and softmax. */
static tg_tensor *build_fresh_mix(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    tg_tensor *a = tg_tanh(t, in[0]), *b = tg_sigmoid(t, in[1]), *v = tg_tanh(t, in[2]);
    tg_tensor *ab = tg_matmul(t, a, b);                           /* (4,3) */
    tg_tensor *aff = tg_affine(t, a, tg_exp(t, b), v);            /* weight, bias from ops */
    tg_tensor *sq = tg_mul(t, ab, ab);                            /* one tensor twice */
    tg_tensor *bc = tg_add(t, aff, v);                            /* v broadcast */
    tg_tensor *cat = tg_concat(t, sq, sq, 1);                     /* (4,6) */
    tg_tensor *sm = tg_softmax(t, tg_concat(t, bc, tg_scale(t, ab, 0.5), 1));
    return tg_add(t, tg_sum_dim(t, cat, 1), tg_sum_dim(t, tg_mul(t, sm, sm), 1));
}

START_TEST(test_fresh_gradients_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 5 }, -1, 1, 21),
                         rnd(2, (int64_t[]){ 5, 3 }, -1, 1, 22),
                         rnd(1, (int64_t[]){ 3 }, -1, 1, 23) };
    double e = gradcheck_case(build_fresh_mix, in, 3, 0);
    printf("gradcheck fresh-gradient mix max_rel_err=%.3g\n", e);
    free_all(in, 3);
}
END_TEST

/* combine = [h | x] with x needing no gradient (the one-hot input of a first layer): the
   concat marks the x columns of its gradient as never read (TG_FLAG_GRAD_LEAD) and the
   products skip them. h's gradient must stay right through matmul, affine and gate, with
   an odd width (a partial last panel) and x in the middle of three inputs (no skip). */
static tg_tensor *build_dead_tail(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    tg_tensor *x = tg_tape_tensor(t, TG_F64, 2, (int64_t[]){ 4, 3 });
    if (!x)
        return NULL;
    for (int64_t i = 0; i < x->numel; i++)
        ((double *)x->data)[i] = 0.1 * (double)(i % 7) - 0.3;
    tg_tensor *h = tg_tanh(t, in[0]);                               /* (4,5) */
    tg_tensor *combine = tg_concat(t, h, x, 1);                     /* (4,8) */
    tg_tensor *middle = tg_concat_n(t, (tg_tensor *[]){ h, x, h }, 3, 1);   /* (4,13) */
    if (combine->flags & TG_FLAG_REQUIRES_GRAD) {   /* recorded for backward */
        ck_assert(combine->flags & TG_FLAG_GRAD_LEAD);
        ck_assert_int_eq(tg_grad_cols(combine), 5);
        ck_assert(!(middle->flags & TG_FLAG_GRAD_LEAD));
    }
    tg_tensor *m = tg_matmul(t, combine, in[1]);                    /* (4,2) */
    tg_tensor *a = tg_affine(t, combine, in[1], in[2]);
    tg_tensor *g = tg_affine_act_op(t, combine, in[1], in[2], true);
    tg_tensor *u = tg_matmul(t, middle, tg_transpose(t, middle));   /* (4,4) */
    return tg_add(t, tg_sum_dim(t, tg_add(t, tg_mul(t, m, a), tg_mul(t, g, g)), 1),
                  tg_sum_dim(t, u, 1));
}

START_TEST(test_dead_gradient_columns_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 5 }, -1, 1, 31),
                         rnd(2, (int64_t[]){ 8, 2 }, -1, 1, 32),
                         rnd(1, (int64_t[]){ 2 }, -1, 1, 33) };
    double e = gradcheck_case(build_dead_tail, in, 3, 0);
    printf("gradcheck dead gradient columns max_rel_err=%.3g\n", e);
    free_all(in, 3);
}
END_TEST

/* x made to require gradients after the concat was recorded gets none from it (the graph
   is what was recorded, as in PyTorch), rather than the columns nobody computed. */
START_TEST(test_dead_gradient_columns_late_requires_grad)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = mk(TG_F64, 2, (int64_t[]){ 1, 2 }, (double[]){ 0.5, -1 });
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 1, 1 }, (double[]){ 2 });
    tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 3, 1 }, (double[]){ 1, 2, 3 });
    tg_tensor_requires_grad(h);
    tg_tensor *y = tg_matmul(tape, tg_concat(tape, h, x, 1), w);   /* 0.5 - 2 + 6 */
    tg_tensor_requires_grad(x);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    ck_close(tg_tensor_grad_get(h, 0), 1, 0);
    ck_close(tg_tensor_grad_get(h, 1), 2, 0);
    ck_close(tg_tensor_grad_get(x, 0), 0, 0);
    tg_tensor_free(h);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tape_free(tape);
}
END_TEST

/* Skipping the dead columns changes no bit of h's gradient when h's width is a whole number
   of GEMM panels (32), f32: x needing a gradient or not. */
START_TEST(test_dead_gradient_columns_same_bits)
{
    float dh[2][50 * 32];
    for (int pass = 0; pass < 2; pass++) {
        tg_tape *tape = tg_tape_new();
        tg_tensor *h = tg_tensor_new(TG_F32, 2, (int64_t[]){ 50, 32 });
        tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){ 50, 65 });
        tg_tensor *w = tg_tensor_new(TG_F32, 2, (int64_t[]){ 97, 48 });
        for (int64_t i = 0; i < h->numel; i++)
            ((float *)h->data)[i] = (float)((i * 37) % 19) / 19.0f - 0.5f;
        for (int64_t i = 0; i < x->numel; i++)
            ((float *)x->data)[i] = i % 65 == i / 65 % 65 ? 1.0f : 0.0f;
        for (int64_t i = 0; i < w->numel; i++)
            ((float *)w->data)[i] = (float)((i * 53) % 23) / 23.0f - 0.5f;
        tg_tensor_requires_grad(h);
        tg_tensor_requires_grad(w);
        if (pass == 1)
            tg_tensor_requires_grad(x);
        tg_tensor *y = tg_affine_act_op(tape, tg_concat(tape, h, x, 1), w, NULL, false);
        ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, y, y))), TG_OK);
        memcpy(dh[pass], h->grad, sizeof dh[pass]);
        tg_tensor_free(h);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tape_free(tape);
    }
    ck_assert(memcmp(dh[0], dh[1], sizeof dh[0]) == 0);
}
END_TEST

/* A node output's gradient buffer is recycled once its node has run backward: a chain of
   200 tanh over 4096 floats needs its activations (3.2 MB) and a few gradient buffers,
   not 200 more; the gradient is the same as a short chain's would be, and the recycled
   intermediates keep no gradient afterwards. */
START_TEST(test_gradient_buffers_are_recycled)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 1, (int64_t[]){ 4096 });
    for (int64_t i = 0; i < x->numel; i++)
        ((float *)x->data)[i] = (float)(i % 17) / 17.0f - 0.5f;
    tg_tensor_requires_grad(x);
    tg_tensor *y = x, *mid = NULL;
    for (int k = 0; k < 200; k++) {
        y = tg_tanh(tape, y);
        if (k == 100)
            mid = y;
    }
    size_t forward = tg_tape_bytes_used(tape);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    size_t grads = tg_tape_bytes_peak(tape) - forward;
    ck_assert_msg(grads < 8 * 4096 * sizeof(float), "backward took %zu bytes", grads);
    ck_assert_ptr_null(mid->grad);
    /* d/dx of tanh^200(x) = prod over the chain of (1 - y_k^2) */
    double want = 1.0, v = tg_tensor_get(x, 5);
    for (int k = 0; k < 200; k++) {
        float t = tanhf((float)v);
        want *= 1.0 - (double)t * t;
        v = t;
    }
    ck_close(tg_tensor_grad_get(x, 5), want, 1e-5 * fabs(want));
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Ops recorded after (or beside) the loss never reached it: their backward must not run,
   or a non-finite value there (0 * inf) would poison the gradients. */
START_TEST(test_nodes_off_the_loss_path_are_skipped)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 1000 });
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_sum(tape, tg_scale(tape, x, 2));
    tg_tensor *off = tg_sum(tape, tg_exp(tape, x));      /* inf, not part of y */
    ck_assert(isinf(tg_tensor_get(off, 0)));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 2, 0);
    ck_close(tg_tensor_grad_get(x, 1), 2, 0);
    ck_assert_ptr_null(off->grad);          /* never reached: no gradient, as before */
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_constants_get_no_gradient)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tensor *c = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 5, 6 });
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, c));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_assert_ptr_null(c->grad);
    ck_close(tg_tensor_grad_get(x, 1), 6, 0);
    /* a loss built only from constants has nothing to differentiate */
    tg_tensor *k = tg_sum(tape, c);
    ck_assert_int_eq(tg_backward(tape, k), TG_ERR_ARG);
    tg_tensor_free(x);
    tg_tensor_free(c);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_grad_disabled_records_nothing)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tensor_requires_grad(x);
    tg_tape_set_grad_enabled(tape, false);
    ck_assert(!tg_tape_grad_enabled(tape));
    tg_tensor *y = tg_sum(tape, tg_tanh(tape, x));
    ck_assert_ptr_nonnull(y);
    ck_assert(!(y->flags & TG_FLAG_REQUIRES_GRAD));
    ck_assert_int_eq(tg_backward(tape, y), TG_ERR_ARG);
    tg_tape_set_grad_enabled(tape, true);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* ---- tape memory ------------------------------------------------------------------------------- */
static tg_tensor *small_step(tg_tape *tape, tg_tensor *w, tg_tensor *x)
{
    tg_tensor *h = tg_tanh(tape, tg_matmul(tape, x, w));
    return tg_mean(tape, tg_mul(tape, h, h));
}

START_TEST(test_reset_reuses_memory_no_malloc)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = mk(TG_F32, 2, (int64_t[]){ 64, 64 }, NULL);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 50, 64 }, NULL);
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor_fill_uniform(w, &r, -0.1, 0.1);
    tg_tensor_fill_uniform(x, &r, -1, 1);
    tg_tensor_requires_grad(w);
    ck_assert_int_eq(tg_backward(tape, small_step(tape, w, x)), TG_OK);
    size_t peak = tg_tape_bytes_peak(tape);
    int64_t mallocs = tg_tape_mallocs(tape);
    ck_assert(peak > 0 && mallocs > 0);
    for (int step = 0; step < 10; step++) {
        tg_tape_reset(tape);
        ck_assert_int_eq(tg_tape_bytes_used(tape), 0);
        ck_assert_int_eq(tg_backward(tape, small_step(tape, w, x)), TG_OK);
    }
    ck_assert_int_eq(tg_tape_mallocs(tape), mallocs);   /* no malloc after the first step */
    ck_assert_int_eq(tg_tape_bytes_peak(tape), peak);   /* and no growth */
    tg_tensor_free(w);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_large_allocations_grow_chunks)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *big = tg_tape_tensor(tape, TG_F64, 2, (int64_t[]){ 1024, 1024 }); /* 8 MiB */
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(((uintptr_t)big->data) % 64, 0);
    ck_assert(tg_tape_bytes_used(tape) >= (size_t)8 << 20);
    tg_tensor *huge = tg_tape_tensor(tape, TG_F64, 2, (int64_t[]){ (int64_t)1 << 40,
                                                                    (int64_t)1 << 40 });
    ck_assert_ptr_null(huge);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_memory_limit_gives_nomem)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_memory_limit(tape, 4 << 20);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 1024, 1024 }, NULL);   /* 4 MiB */
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_tanh(tape, x);
    tg_tensor *z = tg_tanh(tape, y);     /* would need 8 MiB of tape */
    ck_assert_ptr_null(z);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "out of memory"));
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, z)), TG_ERR_NOMEM);
    /* the limit also covers gradient buffers made during backward */
    tg_tape_reset(tape);
    tg_tape_set_memory_limit(tape, 0);
    ck_assert_ptr_nonnull(tg_tanh(tape, tg_tanh(tape, x)));
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

static void count_gate_calls(void *user, const char *name, const tg_tensor *t)
{
    ck_assert_str_eq(name, "gate");
    ck_assert_int_eq(t->numel, 2);
    (*(int *)user)++;
}

START_TEST(test_observer_sees_named_steps)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 2 }, (double[]){ 0, 1 });
    int calls = 0;
    tg_name(tape, x, "ignored");          /* no observer: nothing happens */
    tg_tape_set_observer(tape, count_gate_calls, &calls);
    ck_assert_ptr_eq(tg_name(tape, x, "gate"), x);
    ck_assert_ptr_null(tg_name(tape, NULL, "gate"));
    ck_assert_int_eq(calls, 1);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST


/* ---- determinism: any thread count gives the same bits ------------------------------------------ */
static void run_chain(int threads, tg_tensor *w, tg_tensor *x, float *out, float *grad)
{
    set_threads(threads);
    tg_tape *tape = tg_tape_new();
    tg_tensor_zero_grad(w);
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, x, w));
    tg_tensor *s = tg_softmax(tape, tg_mul(tape, h, tg_tanh(tape, h)));
    tg_tensor *loss = tg_cross_entropy(tape, tg_log(tape, tg_add_scalar(tape, s, 1)),
                                       (int32_t[512]){ 0 });
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    memcpy(out, s->data, (size_t)s->numel * sizeof(float));
    memcpy(grad, w->grad, (size_t)w->numel * sizeof(float));
    tg_tape_free(tape);
}

START_TEST(test_thread_count_determinism)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *w = mk(TG_F32, 2, (int64_t[]){ 300, 400 }, NULL);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 512, 300 }, NULL);
    tg_tensor_fill_uniform(w, &r, -0.1, 0.1);
    tg_tensor_fill_uniform(x, &r, -1, 1);
    tg_tensor_requires_grad(w);
    size_t n = 512 * 400;
    float *o1 = malloc(n * 4), *o2 = malloc(n * 4), *g1 = malloc(n * 4), *g2 = malloc(n * 4);
    run_chain(1, w, x, o1, g1);
    run_chain(2, w, x, o2, g2);
    ck_assert_int_eq(memcmp(o1, o2, n * 4), 0);
    ck_assert_int_eq(memcmp(g1, g2, 300 * 400 * 4), 0);
    free(o1); free(o2); free(g1); free(g2);
    tg_tensor_free(w);
    tg_tensor_free(x);
}
END_TEST

Suite *ops_tape_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("autograd", 60),
        TG_TEST(test_fanout_and_repeated_backward_accumulate),
        TG_TEST(test_constants_get_no_gradient),
        TG_TEST(test_nodes_off_the_loss_path_are_skipped),
        TG_TEST(test_backward_from_two_losses_on_one_tape),
        TG_TEST(test_repeated_backward_with_many_gradient_sizes),
        TG_TEST(test_fresh_gradients_gradcheck),
        TG_TEST(test_dead_gradient_columns_gradcheck),
        TG_TEST(test_dead_gradient_columns_same_bits),
        TG_TEST(test_dead_gradient_columns_late_requires_grad),
        TG_TEST(test_gradient_buffers_are_recycled),
        TG_TEST(test_grad_disabled_records_nothing),
        TG_TEST(test_reset_reuses_memory_no_malloc),
        TG_TEST(test_large_allocations_grow_chunks),
        TG_TEST(test_memory_limit_gives_nomem),
        TG_TEST(test_observer_sees_named_steps),
        TG_TEST(test_thread_count_determinism),
    };
    return TG_TEST_SUITE("ops_tape", rows);
}
