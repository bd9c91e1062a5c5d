/* tests/test_gemm.c: tg_sgemm/tg_dgemm against a naive double-precision reference. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/gemm_internal.h"
#include "tensor/tensor_internal.h"
#include "tests/tests.h"

/* ---- helpers --------------------------------------------------------------------------- */

typedef enum impl { IMPL_PUBLIC, IMPL_PORTABLE } impl;

typedef struct gcase {
    int64_t M, N, K;
    bool ta, tb;
    double alpha, beta;
    int64_t pad;          /* extra columns in every leading dimension (lda, ldb, ldc) */
} gcase;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void)   /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* Storage of op(X) that is (rows, cols): X itself is (rows, cols), or (cols, rows) when
 * transposed; padded to ld = stored cols + pad. */
static int64_t stored_rows(int64_t rows, int64_t cols, bool t) { return t ? cols : rows; }
static int64_t stored_ld(int64_t rows, int64_t cols, bool t, int64_t pad)
{
    return (t ? rows : cols) + pad;
}

/* Fills n doubles: random values, and NaN in the padding columns (which must never be read,
 * except C's padding which must never be written). */
static double *make_matrix(int64_t srows, int64_t scols, int64_t ld)
{
    size_t n = (size_t)(srows * ld);
    double *m = malloc((n ? n : 1) * sizeof *m);
    ck_assert_ptr_nonnull(m);
    for (int64_t r = 0; r < srows; r++)
        for (int64_t c = 0; c < ld; c++)
            m[r * ld + c] = c < scols ? urand() : NAN;
    return m;
}

/* Runs one case in f32 or f64 through the chosen implementation and checks every element
 * against a double-precision reference with a bound scaled by K and the magnitudes. */
static void run_case(const gcase *g, bool f64, impl which, bool nan_c)
{
    const int64_t M = g->M, N = g->N, K = g->K;
    int64_t lda = stored_ld(M, K, g->ta, g->pad), ldb = stored_ld(K, N, g->tb, g->pad);
    int64_t ldc = N + g->pad;
    int64_t ar = stored_rows(M, K, g->ta), br = stored_rows(K, N, g->tb);
    double *A = make_matrix(ar, g->ta ? M : K, lda);
    double *B = make_matrix(br, g->tb ? K : N, ldb);
    double *C0 = make_matrix(M, N, ldc);
    if (nan_c)
        for (int64_t i = 0; i < M * ldc; i++)
            C0[i] = NAN;
    size_t na = (size_t)(ar * lda), nb = (size_t)(br * ldb), nc = (size_t)(M * ldc);

    /* Run in the requested precision. */
    double *C = malloc((nc ? nc : 1) * sizeof *C);
    ck_assert_ptr_nonnull(C);
    if (f64) {
        memcpy(C, C0, nc * sizeof *C);
        if (which == IMPL_PUBLIC)
            tg_dgemm(g->ta, g->tb, M, N, K, g->alpha, A, lda, B, ldb, g->beta, C, ldc);
        else
            ck_assert(tg_dgemm_portable(g->ta, g->tb, M, N, K, g->alpha, A, lda, B, ldb,
                                         NULL, NULL, NULL, g->beta, C, ldc));
    } else {
        float *Af = malloc((na ? na : 1) * sizeof *Af), *Bf = malloc((nb ? nb : 1) * sizeof *Bf);
        float *Cf = malloc((nc ? nc : 1) * sizeof *Cf);
        ck_assert(Af && Bf && Cf);
        for (size_t i = 0; i < na; i++)
            Af[i] = (float)A[i], A[i] = (double)Af[i];
        for (size_t i = 0; i < nb; i++)
            Bf[i] = (float)B[i], B[i] = (double)Bf[i];
        for (size_t i = 0; i < nc; i++)
            Cf[i] = (float)C0[i], C0[i] = (double)Cf[i];
        if (which == IMPL_PUBLIC)
            tg_sgemm(g->ta, g->tb, M, N, K, (float)g->alpha, Af, lda, Bf, ldb, (float)g->beta,
                     Cf, ldc);
        else
            ck_assert(tg_sgemm_portable(g->ta, g->tb, M, N, K, (float)g->alpha, Af, lda, Bf,
                                         ldb, NULL, NULL, NULL, (float)g->beta, Cf, ldc));
        for (size_t i = 0; i < nc; i++)
            C[i] = Cf[i];
        free(Af);
        free(Bf);
        free(Cf);
    }

    const double eps = f64 ? 1.1102230246251565e-16 : 5.9604644775390625e-08;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            double got = C[i * ldc + j];
            if (j >= N) {   /* padding: untouched (NaN stays NaN) */
                ck_assert_msg(isnan(got), "C padding (%lld,%lld) was written",
                              (long long)i, (long long)j);
                continue;
            }
            double s = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = g->ta ? A[k * lda + i] : A[i * lda + k];
                double b = g->tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double c0 = C0[i * ldc + j];
            double want = g->alpha * s, bound = fabs(g->alpha) * mag;
            if (g->beta != 0) {
                want += g->beta * c0;
                bound += fabs(g->beta * c0);
            }
            double tol = (2.0 * (double)K + 4.0) * eps * bound + 1e-300;
            ck_assert_msg(fabs(got - want) <= tol,
                          "%s %s M=%lld N=%lld K=%lld ta=%d tb=%d alpha=%g beta=%g pad=%lld: "
                          "C(%lld,%lld) = %.17g, expected %.17g (tol %g)",
                          f64 ? "f64" : "f32", which == IMPL_PUBLIC ? "public" : "portable",
                          (long long)M, (long long)N, (long long)K, g->ta, g->tb, g->alpha,
                          g->beta, (long long)g->pad, (long long)i, (long long)j, got, want,
                          tol);
        }
    }
    free(A);
    free(B);
    free(C0);
    free(C);
}

/* Every transpose combination of (M,N,K), in both precisions and both implementations. */
static void run_all(int64_t M, int64_t N, int64_t K, double alpha, double beta, int64_t pad,
                    bool nan_c)
{
    for (int t = 0; t < 4; t++) {
        gcase g = {M, N, K, t & 1, (t >> 1) & 1, alpha, beta, pad};
        for (int f = 0; f < 2; f++) {
            run_case(&g, f, IMPL_PUBLIC, nan_c);
            run_case(&g, f, IMPL_PORTABLE, nan_c);
        }
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(test_gemm_backend_name)
{
    const char *b = tg_gemm_backend();
    ck_assert_ptr_nonnull(b);
    ck_assert(strcmp(b, "avx2-fma") == 0 || strcmp(b, "portable") == 0 ||
              strcmp(b, "openblas") == 0);
}
END_TEST

START_TEST(test_gemm_tiny_shapes)
{
    run_all(1, 1, 1, 1.0, 0.0, 0, false);
    run_all(7, 13, 9, 1.0, 0.0, 0, false);
    run_all(2, 3, 1, 1.0, 0.0, 0, false);
    run_all(1, 40, 5, 1.0, 0.0, 0, false);
    run_all(40, 1, 5, 1.0, 0.0, 0, false);
}
END_TEST

/* Shapes on both sides of the micro-tile edges (MR 4/6, NR 4/8/16, and the 2-, 4-row, 8-
 * and 1..4-column edge kernels), with odd and even K (the edge kernels split even and odd
 * k). */
START_TEST(test_gemm_tile_edges)
{
    static const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13};
    static const int64_t ns[] = {1, 7, 8, 9, 15, 16, 17, 24, 33};
    static const int64_t ks[] = {1, 2, 3, 8, 9};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                run_all(ms[a], ns[b], ks[c], 1.0, 0.0, 0, false);
}
END_TEST

/* K around the slice depth (256): one, two and three slices, equal and unequal. */
START_TEST(test_gemm_k_slices)
{
    static const int64_t ks[] = {255, 256, 257, 513, 577};
    for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
        run_all(13, 19, ks[c], 1.0, 0.0, 0, false);
}
END_TEST

/* Many rows and columns in the few-rows (columns) mode; the slices mode with several row
 * blocks (MC) and K slices; and the rows mode with two K slices too wide for the slices
 * mode (a slice of packed op(B) over 4 MiB) and two column blocks (op(B) over 8 MiB). */
START_TEST(test_gemm_blocks)
{
    run_all(300, 21, 11, 1.0, 0.0, 0, false);
    run_all(7, 4100, 5, 1.0, 0.0, 0, false);
    gcase g = {200, 520, 2100, false, true, 1.0, 0.5, 2};
    run_case(&g, false, IMPL_PUBLIC, false);
    run_case(&g, true, IMPL_PUBLIC, false);
    g.ta = true;
    g.tb = false;
    run_case(&g, false, IMPL_PUBLIC, false);
    gcase wide = {129, 4112, 512, true, false, 1.0, 0.5, 1};
    run_case(&wide, false, IMPL_PUBLIC, false);
}
END_TEST

START_TEST(test_gemm_large_odd)
{
    /* 513x257x1031 (M x N x K) in f32 and f64, all four transposes, public kernels. */
    for (int t = 0; t < 4; t++) {
        gcase g = {513, 257, 1031, t & 1, (t >> 1) & 1, 1.0, 0.0, 0};
        run_case(&g, false, IMPL_PUBLIC, false);
        run_case(&g, true, IMPL_PUBLIC, false);
    }
    gcase g = {513, 257, 1031, true, true, 0.5, -1.0, 3};
    run_case(&g, false, IMPL_PORTABLE, false);
}
END_TEST

START_TEST(test_gemm_alpha_beta)
{
    run_all(11, 21, 37, -0.5, 1.0, 0, false);     /* accumulate */
    run_all(11, 21, 37, 2.0, 0.25, 0, false);
    run_all(11, 21, 300, 1.0, -1.0, 0, false);    /* beta applied once over 2 K slices */
    run_all(11, 21, 37, 1.0, 0.0, 0, true);       /* beta 0: NaN in C is never read */
    run_all(50, 70, 300, 0.75, 0.0, 0, true);
}
END_TEST

START_TEST(test_gemm_leading_dims)
{
    run_all(9, 17, 13, 1.0, 0.0, 3, false);
    run_all(50, 33, 130, 1.5, 1.0, 5, false);
    run_all(13, 40, 300, 1.0, 0.0, 1, true);
}
END_TEST

/* alpha == 0 or K == 0 scale C by beta without reading A or B; M or N == 0 do nothing. */
START_TEST(test_gemm_degenerate)
{
    float A[4] = {NAN, NAN, NAN, NAN}, B[4] = {NAN, NAN, NAN, NAN};
    float C[4] = {1, 2, 3, 4};
    tg_sgemm(false, false, 2, 2, 2, 0.0f, A, 2, B, 2, 0.5f, C, 2);
    ck_assert(C[0] == 0.5f && C[1] == 1.0f && C[2] == 1.5f && C[3] == 2.0f);
    tg_sgemm(false, false, 2, 2, 0, 1.0f, A, 2, B, 2, 2.0f, C, 2);
    ck_assert(C[0] == 1.0f && C[3] == 4.0f);
    float Cn[4] = {NAN, NAN, NAN, NAN};
    tg_sgemm(true, true, 2, 2, 0, 1.0f, A, 2, B, 2, 0.0f, Cn, 2);
    for (int i = 0; i < 4; i++)
        ck_assert(Cn[i] == 0.0f);
    tg_sgemm(false, false, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    tg_sgemm(false, false, 2, 0, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    tg_sgemm(false, false, -1, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    ck_assert(C[0] == 1.0f && C[1] == 2.0f && C[2] == 3.0f && C[3] == 4.0f);

    double Ad[1] = {NAN}, Bd[1] = {NAN}, Cd[1] = {3.0};
    tg_dgemm(false, false, 1, 1, 1, 0.0, Ad, 1, Bd, 1, -1.0, Cd, 1);
    ck_assert(Cd[0] == -3.0);
    tg_dgemm(false, false, 1, 1, 0, 1.0, Ad, 1, Bd, 1, 0.0, Cd, 1);
    ck_assert(Cd[0] == 0.0);
}
END_TEST

/* Exact products: small integers sum exactly in any order, so results are exact. */
START_TEST(test_gemm_exact_integers)
{
    enum { M = 23, N = 37, K = 301 };
    static float A[M * K], B[K * N], C[M * N];
    for (int i = 0; i < M * K; i++)
        A[i] = (float)((i * 7) % 5 - 2);
    for (int i = 0; i < K * N; i++)
        B[i] = (float)((i * 3) % 7 - 3);
    tg_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            long s = 0;
            for (int k = 0; k < K; k++)
                s += (long)A[i * K + k] * (long)B[k * N + j];
            ck_assert_msg(C[i * N + j] == (float)s, "C(%d,%d) = %g, expected %ld", i, j,
                          (double)C[i * N + j], s);
        }
}
END_TEST

/* Runs the same products with 1 and with 2 OpenMP threads: outputs must match bit for bit. */
static void determinism_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float beta,
                             impl which)
{
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
    float *C1 = malloc(nc * sizeof *C1), *C2 = malloc(nc * sizeof *C2);
    double *Ad = malloc(na * sizeof *Ad), *Bd = malloc(nb * sizeof *Bd);
    double *D1 = malloc(nc * sizeof *D1), *D2 = malloc(nc * sizeof *D2);
    ck_assert(A && B && C1 && C2 && Ad && Bd && D1 && D2);
    for (size_t i = 0; i < na; i++)
        Ad[i] = urand(), A[i] = (float)Ad[i];
    for (size_t i = 0; i < nb; i++)
        Bd[i] = urand(), B[i] = (float)Bd[i];
    for (size_t i = 0; i < nc; i++)
        D1[i] = D2[i] = urand(), C1[i] = C2[i] = (float)D1[i];
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass == 0 ? 1 : 2);
        float *C = pass == 0 ? C1 : C2;
        double *D = pass == 0 ? D1 : D2;
        if (which == IMPL_PUBLIC) {
            tg_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, C, N);
            tg_dgemm(ta, tb, M, N, K, 0.5, Ad, lda, Bd, ldb, beta, D, N);
        } else {
            ck_assert(tg_sgemm_portable(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, NULL, NULL, NULL,
                                         beta, C, N));
            ck_assert(tg_dgemm_portable(ta, tb, M, N, K, 0.5, Ad, lda, Bd, ldb, NULL, NULL, NULL,
                                         beta, D, N));
        }
    }
    ck_assert_msg(memcmp(C1, C2, nc * sizeof *C1) == 0,
                  "f32 %lldx%lldx%lld ta=%d tb=%d differs between 1 and 2 threads",
                  (long long)M, (long long)N, (long long)K, ta, tb);
    ck_assert_msg(memcmp(D1, D2, nc * sizeof *D1) == 0,
                  "f64 %lldx%lldx%lld ta=%d tb=%d differs between 1 and 2 threads",
                  (long long)M, (long long)N, (long long)K, ta, tb);
    free(A);
    free(B);
    free(C1);
    free(C2);
    free(Ad);
    free(Bd);
    free(D1);
    free(D2);
}

/* tg_sgemm_rows over rows scattered through a buffer (each row at its own offset, in
   segments of `seg` rows as the tape queues them) must give, bit for bit, what tg_sgemm
   gives for the same rows stored contiguously, with 1 and 2 threads, and the portable
   driver likewise. */
static void rows_case(int64_t M, int64_t N, int64_t K, int64_t seg)
{
    size_t na = (size_t)(K * M), nb = (size_t)(K * N), nc = (size_t)(M * N);
    size_t gap = 7, nscat = na + nb + 2 * (size_t)K * gap + 64;
    double *Ad = malloc(na * sizeof *Ad), *Bd = malloc(nb * sizeof *Bd);
    double *Cd = malloc(nc * sizeof *Cd), *Rd = malloc(nc * sizeof *Rd);
    double *Sd = malloc(nscat * sizeof *Sd);
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
    float *C = malloc(nc * sizeof *C), *R = malloc(nc * sizeof *R), *S = malloc(nscat * sizeof *S);
    const double **ard = malloc((size_t)K * sizeof *ard), **brd = malloc((size_t)K * sizeof *brd);
    const float **ar = malloc((size_t)K * sizeof *ar), **br = malloc((size_t)K * sizeof *br);
    ck_assert(Ad && Bd && Cd && Rd && Sd && A && B && C && R && S && ard && brd && ar && br);
    for (size_t i = 0; i < na; i++)
        Ad[i] = urand(), A[i] = (float)Ad[i];
    for (size_t i = 0; i < nb; i++)
        Bd[i] = urand(), B[i] = (float)Bd[i];
    /* segment by segment: seg rows of A, then seg rows of B, a gap after each row */
    size_t at = 3;
    for (int64_t k0 = 0; k0 < K; k0 += seg) {
        for (int64_t k = k0; k < K && k < k0 + seg; k++, at += (size_t)M + gap) {
            memcpy(Sd + at, Ad + k * M, (size_t)M * sizeof *Sd);
            memcpy(S + at, A + k * M, (size_t)M * sizeof *S);
            ard[k] = Sd + at, ar[k] = S + at;
        }
        for (int64_t k = k0; k < K && k < k0 + seg; k++, at += (size_t)N + gap) {
            memcpy(Sd + at, Bd + k * N, (size_t)N * sizeof *Sd);
            memcpy(S + at, B + k * N, (size_t)N * sizeof *S);
            brd[k] = Sd + at, br[k] = S + at;
        }
    }
    ck_assert(at <= nscat);
    int threads = omp_get_max_threads();
    for (int pass = 0; pass < 3; pass++) {
        omp_set_num_threads(pass == 1 ? 2 : 1);
        for (size_t i = 0; i < nc; i++)
            Cd[i] = Rd[i] = urand(), C[i] = R[i] = (float)Cd[i];
        if (pass < 2) {
            tg_sgemm(true, false, M, N, K, 0.5f, A, M, B, N, 1.0f, R, N);
            tg_sgemm_rows(M, N, K, 0.5f, ar, br, 1.0f, C, N);
            tg_dgemm(true, false, M, N, K, 0.5, Ad, M, Bd, N, 1.0, Rd, N);
            tg_dgemm_rows(M, N, K, 0.5, ard, brd, 1.0, Cd, N);
        } else {
            ck_assert(tg_sgemm_portable(true, false, M, N, K, 0.5f, A, M, B, N, NULL, NULL, NULL,
                                         1.0f, R, N));
            ck_assert(tg_sgemm_portable(true, false, M, N, K, 0.5f, NULL, 0, NULL, 0, ar, br, NULL,
                                         1.0f, C, N));
            ck_assert(tg_dgemm_portable(true, false, M, N, K, 0.5, Ad, M, Bd, N, NULL, NULL, NULL,
                                         1.0, Rd, N));
            ck_assert(tg_dgemm_portable(true, false, M, N, K, 0.5, NULL, 0, NULL, 0, ard, brd,
                                         NULL, 1.0, Cd, N));
        }
        ck_assert_msg(memcmp(C, R, nc * sizeof *C) == 0 && memcmp(Cd, Rd, nc * sizeof *Cd) == 0,
                      "rows %lldx%lldx%lld (segments of %lld) pass %d differs from the "
                      "contiguous product", (long long)M, (long long)N, (long long)K,
                      (long long)seg, pass);
    }
    omp_set_num_threads(threads);
    free(Ad), free(Bd), free(Cd), free(Rd), free(Sd), free(A), free(B), free(C), free(R);
    free(S), free(ard), free(brd), free(ar), free(br);
}

START_TEST(test_gemm_rows)
{
    rows_case(1, 1, 1, 1);
    rows_case(13, 7, 5, 2);
    rows_case(193, 128, 500, 50);     /* h128 layer 1 gate weight over 10 steps (slices mode) */
    rows_case(193, 512, 500, 50);     /* a wider one (rows mode: a slice of B is too big) */
    rows_case(40, 100, 300, 50);      /* columns mode */
    rows_case(65, 33, 601, 7);        /* edges, K slices that cut segments */
}
END_TEST

/* tg_sgemm_prepacked with tg_sgemm_pack's copy of op(B) gives tg_sgemm's bits. */
START_TEST(test_gemm_prepacked)
{
    const int64_t shapes[][3] = { { 50, 128, 193 }, { 50, 193, 128 }, { 7, 33, 5 },
                                  { 2500, 65, 128 }, { 50, 512, 577 } };
    int threads = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int tb = 0; tb < 2; tb++) {
            int64_t ldb = tb ? K : N, n = tg_sgemm_packed_size(K, N);
            size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
            float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
            float *C1 = malloc(nc * sizeof *C1), *C2 = malloc(nc * sizeof *C2);
            float *P = aligned_alloc(64, (size_t)(n + 16) * sizeof *P);
            ck_assert(A && B && C1 && C2 && P && n >= K * N);
            for (int64_t i = 0; i < M * K; i++)
                A[i] = (float)urand();
            for (int64_t i = 0; i < K * N; i++)
                B[i] = (float)urand();
            tg_sgemm_pack(tb, K, N, B, ldb, P);
            for (int th = 1; th <= 2; th++) {
                omp_set_num_threads(th);
                for (int64_t i = 0; i < M * N; i++)
                    C1[i] = C2[i] = (float)urand();
                tg_sgemm(false, tb, M, N, K, 0.5f, A, K, B, ldb, 1.0f, C1, N);
                tg_sgemm_prepacked(tb, M, N, K, 0.5f, A, K, B, ldb, P, 1.0f, C2, N);
                ck_assert_msg(memcmp(C1, C2, (size_t)(M * N) * sizeof *C1) == 0,
                              "prepacked %lldx%lldx%lld tb=%d differs", (long long)M,
                              (long long)N, (long long)K, tb);
            }
            omp_set_num_threads(threads);
            free(A), free(B), free(C1), free(C2), free(P);
        }
    }
}
END_TEST

/* One or two rows of A (generation) take a path of their own that reads B in place: the
 * bits must be the packed driver's, for 1 and 2 threads, any beta, padded leading
 * dimensions, K over several slices and columns that end mid-vector. */
START_TEST(test_gemm_small_m)
{
    if (strcmp(tg_gemm_backend(), "avx2-fma") != 0)
        return;
    /* M, N, K: ldb = N + 5 up to 256 walks 32-column strips, the last with up to 7 more
       columns (65, 70), then sweeps what is left (200, 251); wider sweeps */
    const int64_t shapes[][3] = { { 1, 512, 577 }, { 1, 65, 512 }, { 2, 128, 193 },
                                  { 1, 1, 1 }, { 2, 37, 700 }, { 1, 300, 1025 },
                                  { 1, 128, 193 }, { 1, 200, 100 }, { 1, 251, 3 },
                                  { 1, 70, 51 } };
    const float betas[] = { 0.0f, 1.0f, 0.5f };
    int threads = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int64_t lda = K + 3, ldb = N + 5, ldc = N + 2;
        float *A = malloc((size_t)(M * lda) * sizeof *A);
        float *B = malloc((size_t)(K * ldb) * sizeof *B);
        float *C1 = malloc((size_t)(M * ldc) * sizeof *C1);
        float *C2 = malloc((size_t)(M * ldc) * sizeof *C2);
        ck_assert(A && B && C1 && C2);
        for (int64_t i = 0; i < M * lda; i++)
            A[i] = (float)urand();
        for (int64_t i = 0; i < K * ldb; i++)
            B[i] = (float)urand();
        for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
            for (int th = 1; th <= 2; th++) {
                omp_set_num_threads(th);
                for (int64_t i = 0; i < M * ldc; i++)
                    C1[i] = C2[i] = (float)urand();
                ck_assert(tg_sgemm_avx2(false, false, M, N, K, 0.75f, A, lda, B, ldb, NULL,
                                         NULL, NULL, betas[b], C1, ldc));
                tg_sgemm(false, false, M, N, K, 0.75f, A, lda, B, ldb, betas[b], C2, ldc);
                ck_assert_msg(memcmp(C1, C2, (size_t)(M * ldc) * sizeof *C1) == 0,
                              "small-M %lldx%lldx%lld beta %g threads %d differs",
                              (long long)M, (long long)N, (long long)K, (double)betas[b], th);
            }
        }
        omp_set_num_threads(threads);
        free(A), free(B), free(C1), free(C2);
    }
}
END_TEST

/* The blocked driver's mode, pinned for the shapes that matter: the char-LM step's
 * products (batch 50, hidden 128 and 512; M, N, K here, where bench_gemm prints M, K, N),
 * generation's one-row products, 1024^3, tiny ones, and the edge of each rule (op(A) past
 * the columns mode's limit, a K slice of op(B) past the slices mode's, columns that split
 * badly over the threads). The mode decides which code runs a product, never its bits; a
 * change here wants a bench_gemm run (bench/README.md). */
START_TEST(test_gemm_mode_choice)
{
#define SA (&tg_sgemm_avx2_tiling)
#define DA (&tg_dgemm_avx2_tiling)
#define SP (&tg_sgemm_portable_tiling)
#define DP (&tg_dgemm_portable_tiling)
#define COLS TG_GEMM_MODE_COLUMNS
#define SLICES TG_GEMM_MODE_SLICES
#define ROWS TG_GEMM_MODE_ROWS
    static const struct {
        const tg_gemm_tiling *tiling;
        int64_t M, N, K;
        int nth;
        tg_gemm_mode mode;
    } cases[] = {
        {SA, 50, 128, 193, 1, COLS},         /* h128 layer 1 gate product x @ W */
        {SA, 50, 128, 193, 2, COLS},
        {SA, 50, 128, 193, 16, ROWS},        /* 8 B panels on 16 threads: split the rows */
        {SA, 50, 193, 128, 2, COLS},         /* its dX = dY @ W^T */
        {SA, 193, 128, 2500, 1, SLICES},     /* its weight gradient over 50 steps */
        {SA, 193, 128, 2500, 2, SLICES},
        {SA, 2500, 65, 128, 2, ROWS},        /* the head over all 2500 rows: one K slice */
        {SA, 128, 65, 2500, 2, SLICES},      /* the head's weight gradient */
        {SA, 50, 512, 577, 2, COLS},         /* h512 layer 1 gate product */
        {SA, 50, 512, 1024, 2, COLS},        /* h512 layer 2: 200 KiB of float op(A) */
        {DA, 50, 512, 1024, 2, SLICES},      /* the same in double: 400 KiB, past the limit */
        {SA, 1024, 512, 2500, 2, SLICES},    /* h512 layer 2 weight gradient */
        {SA, 1, 128, 193, 1, COLS},          /* generation: one row */
        {SA, 1, 512, 1024, 2, COLS},
        {SA, 1, 65, 512, 1, COLS},
        {SA, 1024, 1024, 1024, 1, SLICES},   /* square */
        {SA, 1024, 1024, 1024, 2, SLICES},
        {SA, 1024, 8192, 1024, 2, ROWS},     /* a K slice of op(B) past the limit */
        {SA, 200, 520, 2100, 2, SLICES},     /* test_gemm_blocks' slices case */
        {SA, 129, 4112, 512, 2, ROWS},       /* and its rows case */
        {SA, 1, 1, 1, 1, COLS},              /* tiny */
        {SA, 7, 5, 3, 1, COLS},
        {SA, 7, 5, 3, 2, ROWS},              /* 1 B panel on 2 threads: split the rows */
        {SA, 120, 40, 300, 1, COLS},
        {SA, 120, 40, 300, 2, SLICES},       /* 3 B panels on 2 threads, 2 K slices */
        {SP, 50, 128, 193, 2, COLS},
        {SP, 193, 128, 2500, 2, SLICES},
        {DP, 50, 128, 193, 2, COLS},
        {DP, 2500, 65, 128, 2, ROWS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_gemm_mode got = tg_gemm_choose_mode(cases[i].tiling, cases[i].M, cases[i].N,
                                               cases[i].K, cases[i].nth);
        ck_assert_msg(got == cases[i].mode, "case %zu: %lld x %lld x %lld on %d: mode %d",
                      i, (long long)cases[i].M, (long long)cases[i].N,
                      (long long)cases[i].K, cases[i].nth, (int)got);
    }
#undef SA
#undef DA
#undef SP
#undef DP
#undef COLS
#undef SLICES
#undef ROWS
}
END_TEST

START_TEST(test_gemm_thread_determinism)
{
    /* The training shapes and odd ones, large enough to run in parallel. */
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = (t >> 1) & 1;
        determinism_case(50, 128, 193, ta, tb, 0.0f, IMPL_PUBLIC);
        determinism_case(193, 128, 50, ta, tb, 1.0f, IMPL_PUBLIC);
        determinism_case(301, 77, 577, ta, tb, 1.0f, IMPL_PUBLIC);
        determinism_case(1000, 65, 129, ta, tb, 0.0f, IMPL_PUBLIC);
        determinism_case(97, 301, 300, ta, tb, 0.5f, IMPL_PORTABLE);
    }
    determinism_case(200, 520, 2100, false, false, 1.0f, IMPL_PUBLIC);   /* column blocks */
    /* 3 B panels split badly over 2 threads: 1 thread runs the columns mode, 2 the slices
     * mode; the arithmetic must not depend on the mode. */
    for (int t = 0; t < 4; t++) {
        determinism_case(120, 40, 300, t & 1, (t >> 1) & 1, 0.0f, IMPL_PUBLIC);
        /* 1- to 4-column edges: A read in place (6x8 kernel) or packed (6xn), same bits */
        for (int64_t n = 33; n <= 36; n++)
            determinism_case(120, n, 301, t & 1, (t >> 1) & 1, 0.0f, IMPL_PUBLIC);
    }
}
END_TEST

/* Runs products of 1e6 multiply-adds, one_s seconds each, on one thread until the guard
 * offers threads (a probe's threaded run, whose first product is then due); returns how
 * many ran, or -1 if the guard did not offer threads within `cap` products. */
static long run_until_threads(double one_s, long cap)
{
    for (long n = 0; n < cap; n++) {
        if (tg_gemm_threads_ok())
            return n;
        tg_gemm_took(false, one_s, 1e6);
    }
    return -1;
}

/* Answers `threaded` products of a probe with threads (the first already offered): the
 * warm-up ones take wake_s seconds, the others par_s. */
static void answer_threaded(int threaded, double wake_s, double par_s)
{
    for (int i = 0; i < threaded; i++) {
        ck_assert(i == 0 || tg_gemm_threads_ok());
        tg_gemm_took(true, i < TG_GEMM_PROBE_WARM ? wake_s : par_s, 1e6);
    }
}

/* Expects a one-thread period of `period_s` seconds of 2e-4 s products, then a probe's
 * one-thread run, before threads are offered again. */
static void expect_one_thread_period(double period_s)
{
    const long n = run_until_threads(2e-4, 1000000);
    const long expect = (long)ceil(period_s / 2e-4 - 1e-9) + TG_GEMM_PROBE_RUN;
    ck_assert_msg(labs(n - expect) <= 1, "period of %ld products, expected %ld", n, expect);
}

static int others_now;   /* what the fake kernel count below answers */
static int fake_others_runnable(void) { return others_now; }

/* A threaded product that loses more than 5 ms against half the one-thread rate switches
 * to one thread at once, until a probe soon after. A probe (which ends early when threads
 * are hopeless) decides the next period: long enough that the probe's cost is 1% of it,
 * and twice as long as the last when it confirms the last decision (5 ms to 1 s). Threads
 * that take milliseconds to wake for a probe's first threaded products (a virtual CPU the
 * host descheduled while it idled), or once in a while after threads have been winning,
 * are not mistaken for a busy machine; sustained losses are. Results stay bit-identical. */
START_TEST(test_gemm_oversubscription_guard)
{
    tg_gemm_others_runnable = fake_others_runnable;   /* the machine's load stays out */
    others_now = 0;
    ck_assert(tg_threads_pay());
    int first = 0;   /* threads first, for a short period of winning products */
    while (tg_gemm_threads_ok() && first < 100) {
        tg_gemm_took(true, 1e-4, 1e6);
        first++;
    }
    ck_assert_int_lt(first, 100);
    tg_gemm_took(false, 2e-4, 1e6);   /* a probe's first one-thread product */
    ck_assert_int_eq(run_until_threads(2e-4, 100), TG_GEMM_PROBE_RUN - 1);
    /* threads slow only to wake, then faster: the whole threaded run is used, threads win,
     * and what the one-thread run lost (16 x 50 us) makes the period 80 ms */
    answer_threaded(TG_GEMM_PROBE_RUN, 1e-2, 1.5e-4);
    ck_assert(tg_threads_pay() && tg_gemm_threads_ok());
    tg_gemm_took(true, 0.02, 1e6);   /* 20 ms: one thread at once */
    ck_assert(!tg_threads_pay());
    expect_one_thread_period(5e-3);
    /* threads 10x slower: the probe ends after a few timed products; what it lost (7.2 ms)
     * makes the period 0.72 s, and a second such probe asks for twice that, capped at 1 s */
    answer_threaded(TG_GEMM_PROBE_WARM + TG_GEMM_PROBE_EARLY, 2e-3, 2e-3);
    ck_assert(!tg_threads_pay());
    expect_one_thread_period(0.72);
    answer_threaded(TG_GEMM_PROBE_WARM + TG_GEMM_PROBE_EARLY, 2e-3, 2e-3);
    expect_one_thread_period(1.0);
    /* threads slow only to wake, then faster: the whole threaded run is used, threads win,
     * and what the one-thread run lost (16 x 50 us) makes the period 80 ms */
    answer_threaded(TG_GEMM_PROBE_RUN, 1e-2, 1.5e-4);
    ck_assert(tg_threads_pay());
    for (int i = 0; i < 120; i++) {   /* 22 ms of winning products, one 4 ms wake-up */
        ck_assert(tg_gemm_threads_ok());
        tg_gemm_took(true, i == 110 ? 4e-3 : 1.5e-4, 1e6);
    }
    ck_assert(tg_threads_pay());
    int slow = 0;   /* threads now 10x slower than one thread: they stop soon */
    while (tg_threads_pay() && slow < 12) {
        ck_assert(tg_gemm_threads_ok());
        tg_gemm_took(true, 2e-3, 1e6);
        slow++;
    }
    ck_assert_int_le(slow, 8);
    determinism_case(50, 128, 193, false, true, 0.0f, IMPL_PUBLIC);   /* serial vs 2 */
}
END_TEST

/* The kernel's count of other runnable threads comes first. A thread that starts while
 * other processes hold the CPUs begins on one thread, and no probe runs while they do:
 * period after period (doubling to 1 s) stays on one thread. Once the CPUs are free, the
 * next period's end probes as before. An unknown count (-1) leaves the timing alone. */
START_TEST(test_gemm_guard_asks_the_kernel)
{
    tg_gemm_others_runnable = fake_others_runnable;
    const int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    others_now = cpus;   /* busy loops on every CPU, for any team size */
    ck_assert(!tg_threads_pay());
    ck_assert_int_eq(run_until_threads(1e-3, 3000), -1);   /* 3 s of products: no probe */
    ck_assert(!tg_threads_pay());
    others_now = 0;   /* the busy loop ends: within a 1 s period, a probe */
    const long n = run_until_threads(1e-3, 3000);
    ck_assert_msg(n >= TG_GEMM_PROBE_RUN && n <= 1000 + TG_GEMM_PROBE_RUN,
                  "probe after %ld products", n);
    answer_threaded(TG_GEMM_PROBE_RUN, 1e-2, 5e-4);   /* threads twice as fast: they win */
    ck_assert(tg_threads_pay() && tg_gemm_threads_ok());
    /* a busy loop that starts while threads win is found by the timing, and from then on
     * the count keeps the guard on one thread */
    others_now = cpus;
    for (int i = 0; i < 20 && tg_threads_pay(); i++) {
        ck_assert(tg_gemm_threads_ok());
        tg_gemm_took(true, 1e-2, 1e6);
    }
    ck_assert(!tg_threads_pay());
    ck_assert_int_eq(run_until_threads(1e-3, 3000), -1);
}
END_TEST

START_TEST(test_gemm_guard_unknown_count)
{
    tg_gemm_others_runnable = fake_others_runnable;
    others_now = -1;   /* no /proc: threads first, and probes decide */
    ck_assert(tg_threads_pay());
    int threaded = 0;
    while (tg_gemm_threads_ok() && threaded < 100) {
        tg_gemm_took(true, 1e-4, 1e6);
        threaded++;
    }
    ck_assert_int_lt(threaded, 100);   /* the first probe came */
    ck_assert_int_eq(run_until_threads(2e-4, 100), TG_GEMM_PROBE_RUN);
}
END_TEST

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;

/* A thread that waits until idle_lock is released. */
static void *idle_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&idle_lock);
    pthread_mutex_unlock(&idle_lock);
    return NULL;
}

/* Linux's own count: a number, never less than -1, and on a machine this test shares it
 * cannot be predicted further; reading it twice must not disturb anything. With more than
 * 256 threads of its own, a process does not ask (-1: the timing decides). */
START_TEST(test_gemm_guard_kernel_count_reads)
{
    const int first = tg_gemm_others_runnable(), second = tg_gemm_others_runnable();
    ck_assert_int_ge(first, -1);
    ck_assert_int_ge(second, -1);
    ck_assert_int_lt(first, 1 << 20);
    enum { MANY = 260 };
    pthread_t tids[MANY];
    pthread_attr_t attr;
    ck_assert_int_eq(pthread_attr_init(&attr), 0);
    ck_assert_int_eq(pthread_attr_setstacksize(&attr, 1 << 16), 0);
    pthread_mutex_lock(&idle_lock);
    int started = 0;
    while (started < MANY && pthread_create(&tids[started], &attr, idle_thread, NULL) == 0)
        started++;
    const int many = tg_gemm_others_runnable();
    pthread_mutex_unlock(&idle_lock);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_attr_destroy(&attr);
    ck_assert_int_eq(started, MANY);
    ck_assert_int_eq(many, -1);
}
END_TEST

Suite *gemm_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("gemm", 120),
        TG_TEST(test_gemm_backend_name),
        TG_TEST(test_gemm_tiny_shapes),
        TG_TEST(test_gemm_tile_edges),
        TG_TEST(test_gemm_k_slices),
        TG_TEST(test_gemm_blocks),
        TG_TEST(test_gemm_large_odd),
        TG_TEST(test_gemm_alpha_beta),
        TG_TEST(test_gemm_leading_dims),
        TG_TEST(test_gemm_degenerate),
        TG_TEST(test_gemm_exact_integers),
        TG_TEST(test_gemm_mode_choice),
        TG_TEST(test_gemm_thread_determinism),
        TG_TEST(test_gemm_rows),
        TG_TEST(test_gemm_prepacked),
        TG_TEST(test_gemm_small_m),
        TG_TEST(test_gemm_oversubscription_guard),
        TG_TEST(test_gemm_guard_asks_the_kernel),
        TG_TEST(test_gemm_guard_unknown_count),
        TG_TEST(test_gemm_guard_kernel_count_reads),
    };
    return TG_TEST_SUITE("gemm", rows);
}
