/* tests/tests.h: the suites of the one Check binary, and small helpers they share. */
#ifndef TG_TESTS_TESTS_H
#define TG_TESTS_TESTS_H

#include <check.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"

/* One suite per module; tests/main.c runs them all. */
Suite *tensor_suite(void);
/* The ops, one suite per topic (tests/test_ops_*.c). */
Suite *ops_pointwise_suite(void);
Suite *ops_matmul_suite(void);
Suite *ops_shape_suite(void);
Suite *ops_reduce_suite(void);
Suite *ops_tape_suite(void);
Suite *ops_errors_suite(void);
Suite *ops_ref_suite(void);
Suite *ops_pointwise_ref_suite(void);
Suite *ops_norm_suite(void);
Suite *ops_layout_suite(void);
Suite *custom_suite(void);
Suite *gradcheck_suite(void);
Suite *nn_suite(void);
Suite *cells_suite(void);
Suite *stack_suite(void);
Suite *optim_suite(void);
Suite *checkpoint_suite(void);
Suite *gemm_suite(void);
Suite *observe_suite(void);
Suite *reliability_suite(void);
Suite *errors_suite(void);
Suite *fuzz_suite(void);
Suite *text_suite(void);
Suite *zoo_suite(void);
Suite *regular_suite(void);

/* Shared file helpers (tests/test_util.c); they fail the test on any I/O error. */
/* The whole file, malloc'ed (caller frees), its length in *size. */
unsigned char *tg_test_read_file(const char *path, size_t *size);
/* Replaces path with n bytes of data. */
void tg_test_write_file(const char *path, const void *data, size_t n);
/* "dir/name" in one of four rotating static buffers (a few may be live at once). */
const char *tg_test_join(const char *dir, const char *name);

/* Shared nn helpers (tests/nn_util.c). */
/* A built-in cell whose public fields a test may fill by hand, and its type. */
typedef struct tg_test_cell {
    const tg_cell_type *type;
    union {
        tg_rnn_cell rnn;
        tg_lstm_cell lstm;
        tg_gru_cell gru;
    } u;
} tg_test_cell;
/* The built-in cell types' names, in the reference header's order. */
extern const char *const tg_test_builtin_cells[3];
/* The registered type called name (the test fails when there is none). */
const tg_cell_type *tg_test_cell_type(const char *name);
/* The gates of a built-in cell in struct order (the reference header's order); returns
   their count. */
int tg_test_cell_gates(tg_test_cell *c, tg_linear **g);
/* One step of the cell through its type; *c (c may be NULL for one-state types) is read
   and replaced for two-state types. Returns the new h. */
tg_tensor *tg_test_cell_step(tg_tape *tape, const tg_test_cell *cell, tg_tensor *x,
                             tg_tensor *h, tg_tensor **c);
/* A caller-owned float64 tensor (d0) or (d0,d1) that requires grad, filled with values
   (row-major) unless NULL. */
tg_tensor *tg_test_new_f64(int ndim, int64_t d0, int64_t d1, const double *values);
/* The largest |t[i] - ref[i]| over t's values (or its gradient when grad is true). */
double tg_test_max_abs_diff(const tg_tensor *t, const double *ref, bool grad);
/* Builds a 2-layer char-LM of the cell type called cell (V 11, H 6) into a new collection
   seeded with seed; release with tg_charlm_deinit and tg_params_free. */
tg_params *tg_test_charlm_params(tg_charlm *m, const char *cell, int embed, uint64_t seed,
                                 tg_dtype dtype);

/* |a - b| <= tol, with both values printed on failure. */
#define ck_close(a, b, tol)                                                          \
    do {                                                                             \
        double ck_a_ = (double)(a), ck_b_ = (double)(b);                             \
        ck_assert_msg(fabs(ck_a_ - ck_b_) <= (tol), "%s = %.17g, expected %.17g (tol %g)", \
                      #a, ck_a_, ck_b_, (double)(tol));                              \
    } while (0)

/* The op call must fail on a freshly reset tape with status and a message starting with
   prefix. */
#define EXPECT_FAIL(tape, call, status, prefix)                                          \
    do {                                                                                 \
        tg_tape_reset(tape);                                                             \
        ck_assert_ptr_null(call);                                                        \
        ck_assert_int_eq(tg_tape_status(tape), status);                                  \
        ck_assert_msg(strncmp(tg_tape_errmsg(tape), prefix, strlen(prefix)) == 0,       \
                      "message '%s' should start with '%s'", tg_tape_errmsg(tape), prefix); \
    } while (0)

/* Helpers shared by the suites: the suite tables, and the ops, cells and zoo tests' checks. */
/* One row of a suite's table (tg_test_suite): TG_CASE starts a test case (timeout in
   seconds, 0 for Check's default); TG_TEST adds a test to the case above it, TG_LOOP a
   loop test over _i in [0, n) (a plain test is the loop [0, 1), as in Check). */
typedef struct tg_test_row {
    const char *tcase;
    int timeout;
    const TTest *test;
    int loops;
} tg_test_row;
#define TG_CASE(name, seconds) { .tcase = (name), .timeout = (seconds) }
#define TG_TEST(fn) { .test = (fn), .loops = 1 }
#define TG_LOOP(fn, n) { .test = (fn), .loops = (n) }
/* A new suite called name with the cases and tests of the n rows, in their order. */
Suite *tg_test_suite(const char *name, const tg_test_row *rows, size_t n);
/* tg_test_suite over a whole array of rows. */
#define TG_TEST_SUITE(name, rows) tg_test_suite((name), (rows), sizeof(rows) / sizeof((rows)[0]))
/* Fails unless every element of the dropout mask is 0 or scale (exactly when tol is 0, else
   within tol) and equals the element of same, a mask drawn from the same seed; returns how
   many elements are 0. */
int64_t tg_test_dropout_zeros(const tg_tensor *mask, const tg_tensor *same, double scale,
                              double tol);

/* Helpers shared by the checkpoint, stack and observe tests. */
/* What most char-LM tests run on: a model from tg_test_charlm_params, a zeroed state of
   batch rows in the same dtype, and a tape. */
typedef struct tg_test_lm {
    tg_charlm m;
    tg_params *ps;
    tg_stack_state *st;
    tg_tape *tape;
} tg_test_lm;
void tg_test_lm_open(tg_test_lm *lm, const char *cell, int embed, uint64_t seed,
                     tg_dtype dtype, int64_t batch);
/* Frees the tape, the state, the model and its parameters. */
void tg_test_lm_close(tg_test_lm *lm);

#endif /* TG_TESTS_TESTS_H */
