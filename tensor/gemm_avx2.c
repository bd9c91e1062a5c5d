/* tensor/gemm_avx2.c: AVX2+FMA register-tiled GEMM micro-kernels (f32 6x16, f64 6x8). */
/*
 * Compiled with -mavx2 -mfma; tg_sgemm/tg_dgemm only call in here after checking the CPU.
 * Each kernel keeps a 6-row tile of C in 12 ymm accumulators: per k step it loads one
 * row of the packed B panel (two vectors), broadcasts the 6 packed A values and issues
 * 12 independent FMAs, enough to hide the FMA latency on two FMA pipes.
 */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "tensor/gemm_internal.h"

/* Accumulates the kc-deep product of an A panel (element (i,k) at a[i*rs + k*cs]) and a
 * B panel (row k at b + k*bs, 16 wide) into a 6x16 tile of C (see GD_KERNEL in
 * gemm_driver_internal.h). */
static inline __attribute__((always_inline)) void
sgemm_kernel_6x16(int64_t kc, const float *a, int64_t rs, int64_t cs, const float *restrict b,
                  int64_t bs, float *restrict c, int64_t ldc, float alpha, float beta,
                  bool overwrite)
{
    const float *a3 = a + 3 * rs;   /* rows 3..5: two bases keep every address one lea */
    for (int r = 0; r < 6; r++) {   /* the tile of C is needed at the end: fetch it now */
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 15), _MM_HINT_T0);
    }
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 t;
        t = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(t, b0, c00);
        c01 = _mm256_fmadd_ps(t, b1, c01);
        t = _mm256_broadcast_ss(a + rs);
        c10 = _mm256_fmadd_ps(t, b0, c10);
        c11 = _mm256_fmadd_ps(t, b1, c11);
        t = _mm256_broadcast_ss(a + 2 * rs);
        c20 = _mm256_fmadd_ps(t, b0, c20);
        c21 = _mm256_fmadd_ps(t, b1, c21);
        t = _mm256_broadcast_ss(a3);
        c30 = _mm256_fmadd_ps(t, b0, c30);
        c31 = _mm256_fmadd_ps(t, b1, c31);
        t = _mm256_broadcast_ss(a3 + rs);
        c40 = _mm256_fmadd_ps(t, b0, c40);
        c41 = _mm256_fmadd_ps(t, b1, c41);
        t = _mm256_broadcast_ss(a3 + 2 * rs);
        c50 = _mm256_fmadd_ps(t, b0, c50);
        c51 = _mm256_fmadd_ps(t, b1, c51);
        a += cs;
        a3 += cs;
        b += bs;
    }
    const __m256 va = _mm256_set1_ps(alpha);
#define TG_STORE_ROW(r, x0, x1)                                                          \
    do {                                                                                 \
        float *cr_ = c + (r) * ldc;                                                      \
        __m256 y0_ = _mm256_mul_ps(va, x0), y1_ = _mm256_mul_ps(va, x1);                 \
        if (!overwrite) {                                                                \
            const __m256 vb_ = _mm256_set1_ps(beta);                                     \
            y0_ = _mm256_add_ps(y0_, _mm256_mul_ps(vb_, _mm256_loadu_ps(cr_)));          \
            y1_ = _mm256_add_ps(y1_, _mm256_mul_ps(vb_, _mm256_loadu_ps(cr_ + 8)));      \
        }                                                                                \
        _mm256_storeu_ps(cr_, y0_);                                                      \
        _mm256_storeu_ps(cr_ + 8, y1_);                                                  \
    } while (0)
    TG_STORE_ROW(0, c00, c01);
    TG_STORE_ROW(1, c10, c11);
    TG_STORE_ROW(2, c20, c21);
    TG_STORE_ROW(3, c30, c31);
    TG_STORE_ROW(4, c40, c41);
    TG_STORE_ROW(5, c50, c51);
#undef TG_STORE_ROW
}

/* ---- f32 edge kernels --------------------------------------------------------------
 * For tiles at the bottom or right edge of C. They read the same panels as the full
 * kernel, write the raw sums to t (rows of 16) and skip the rows or columns that
 * do not exist, so an edge costs about what it computes. The 2-row and 8-column kernels
 * keep two sets of accumulators (even and odd k, added at the end) to keep both FMA pipes
 * busy; which kernel computes an element depends only on (M, N), so the summation order
 * still depends only on (M, N, K). */

/* Rows 0..1 of a 6x16 tile. */
static void sgemm_edge_2x16(int64_t kc, const float *a, int64_t rs, int64_t cs,
                            const float *restrict b, int64_t bs, float *restrict t)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 d00 = _mm256_setzero_ps(), d01 = _mm256_setzero_ps();
    __m256 d10 = _mm256_setzero_ps(), d11 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 b2 = _mm256_loadu_ps(b + bs), b3 = _mm256_loadu_ps(b + bs + 8);
        __m256 t0 = _mm256_broadcast_ss(a), t1 = _mm256_broadcast_ss(a + rs);
        __m256 u0 = _mm256_broadcast_ss(a + cs), u1 = _mm256_broadcast_ss(a + cs + rs);
        c00 = _mm256_fmadd_ps(t0, b0, c00);
        c01 = _mm256_fmadd_ps(t0, b1, c01);
        c10 = _mm256_fmadd_ps(t1, b0, c10);
        c11 = _mm256_fmadd_ps(t1, b1, c11);
        d00 = _mm256_fmadd_ps(u0, b2, d00);
        d01 = _mm256_fmadd_ps(u0, b3, d01);
        d10 = _mm256_fmadd_ps(u1, b2, d10);
        d11 = _mm256_fmadd_ps(u1, b3, d11);
        a += 2 * cs;
        b += 2 * bs;
    }
    if (k < kc) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 t0 = _mm256_broadcast_ss(a), t1 = _mm256_broadcast_ss(a + rs);
        c00 = _mm256_fmadd_ps(t0, b0, c00);
        c01 = _mm256_fmadd_ps(t0, b1, c01);
        c10 = _mm256_fmadd_ps(t1, b0, c10);
        c11 = _mm256_fmadd_ps(t1, b1, c11);
    }
    _mm256_store_ps(t, _mm256_add_ps(c00, d00));
    _mm256_store_ps(t + 8, _mm256_add_ps(c01, d01));
    _mm256_store_ps(t + 16, _mm256_add_ps(c10, d10));
    _mm256_store_ps(t + 24, _mm256_add_ps(c11, d11));
}

/* Rows 0..3 of a 6x16 tile. */
static void sgemm_edge_4x16(int64_t kc, const float *a, int64_t rs, int64_t cs,
                            const float *restrict b, int64_t bs, float *restrict t)
{
    const float *a2 = a + 2 * rs;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + rs);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2);
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a2 + rs);
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        a += cs;
        a2 += cs;
        b += bs;
    }
    _mm256_store_ps(t, c00);
    _mm256_store_ps(t + 8, c01);
    _mm256_store_ps(t + 16, c10);
    _mm256_store_ps(t + 24, c11);
    _mm256_store_ps(t + 32, c20);
    _mm256_store_ps(t + 40, c21);
    _mm256_store_ps(t + 48, c30);
    _mm256_store_ps(t + 56, c31);
}

/* Columns 0..7 of a 6x16 tile. */
static void sgemm_edge_6x8(int64_t kc, const float *a, int64_t rs, int64_t cs,
                           const float *restrict b, int64_t bs, float *restrict t)
{
    const float *a3 = a + 3 * rs;
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps();
    __m256 c3 = _mm256_setzero_ps(), c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps();
    __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps(), d2 = _mm256_setzero_ps();
    __m256 d3 = _mm256_setzero_ps(), d4 = _mm256_setzero_ps(), d5 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + bs);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + rs), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * rs), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + rs), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + 2 * rs), b0, c5);
        d0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + cs), b1, d0);
        d1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + cs + rs), b1, d1);
        d2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + cs + 2 * rs), b1, d2);
        d3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + cs), b1, d3);
        d4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + cs + rs), b1, d4);
        d5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + cs + 2 * rs), b1, d5);
        a += 2 * cs;
        a3 += 2 * cs;
        b += 2 * bs;
    }
    if (k < kc) {
        __m256 b0 = _mm256_loadu_ps(b);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + rs), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * rs), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + rs), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + 2 * rs), b0, c5);
    }
    _mm256_store_ps(t, _mm256_add_ps(c0, d0));
    _mm256_store_ps(t + 16, _mm256_add_ps(c1, d1));
    _mm256_store_ps(t + 32, _mm256_add_ps(c2, d2));
    _mm256_store_ps(t + 48, _mm256_add_ps(c3, d3));
    _mm256_store_ps(t + 64, _mm256_add_ps(c4, d4));
    _mm256_store_ps(t + 80, _mm256_add_ps(c5, d5));
}

/* Columns 0..nr-1 (nr <= 4) of a 6x16 tile whose A panel is packed (rs 1, cs 6): the 6
 * rows of one k are one masked load, so a k step costs one load and nr broadcasts where
 * the 6x8 kernel spends six broadcasts and a load on columns that do not exist (a 65-wide
 * output head ends in a 1-wide panel). Each lane does what lane j of the 6x8 kernel does
 * for row i, (even-k chain) + (odd-k chain), so the bits are the same as the 6x8 kernel's
 * (A read in place, rs > 1, still takes that one). */
static inline __attribute__((always_inline)) void
sgemm_edge_6xn_packed(int nr, int64_t kc, const float *a, const float *restrict b, int64_t bs,
                      float *restrict t)
{
    const __m256i rows6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    __m256 c[4], d[4];
    for (int j = 0; j < 4; j++)
        c[j] = d[j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        __m256 a0 = _mm256_maskload_ps(a, rows6), a1 = _mm256_maskload_ps(a + 6, rows6);
        for (int j = 0; j < nr; j++) {
            c[j] = _mm256_fmadd_ps(a0, _mm256_broadcast_ss(b + j), c[j]);
            d[j] = _mm256_fmadd_ps(a1, _mm256_broadcast_ss(b + bs + j), d[j]);
        }
        a += 12;
        b += 2 * bs;
    }
    if (k < kc) {
        __m256 a0 = _mm256_maskload_ps(a, rows6);
        for (int j = 0; j < nr; j++)
            c[j] = _mm256_fmadd_ps(a0, _mm256_broadcast_ss(b + j), c[j]);
    }
    for (int j = 0; j < nr; j++) {
        _Alignas(32) float col[8];
        _mm256_store_ps(col, _mm256_add_ps(c[j], d[j]));
        for (int i = 0; i < 6; i++)
            t[i * 16 + j] = col[i];
    }
}

/* Picks an edge kernel for an mr x nr edge tile; false: use the full kernel. */
static inline __attribute__((always_inline)) bool
sgemm_edge(int64_t mr, int64_t nr, int64_t kc, const float *a, int64_t rs, int64_t cs,
           const float *b, int64_t bs, float *t)
{
    if (mr <= 2) {
        sgemm_edge_2x16(kc, a, rs, cs, b, bs, t);
        return true;
    }
    if (mr <= 4) {
        sgemm_edge_4x16(kc, a, rs, cs, b, bs, t);
        return true;
    }
    if (nr <= 4 && rs == 1 && cs == 6) {   /* same bits as 6x8, fewer loads */
        switch (nr) {
        case 1: sgemm_edge_6xn_packed(1, kc, a, b, bs, t); break;
        case 2: sgemm_edge_6xn_packed(2, kc, a, b, bs, t); break;
        case 3: sgemm_edge_6xn_packed(3, kc, a, b, bs, t); break;
        default: sgemm_edge_6xn_packed(4, kc, a, b, bs, t); break;
        }
        return true;
    }
    if (nr <= 8) {
        sgemm_edge_6x8(kc, a, rs, cs, b, bs, t);
        return true;
    }
    return false;
}

/* The f64 kernel: A panel element (i,k) at a[i*rs + k*cs], B row k at b + k*bs, 6x8 tile. */
static inline __attribute__((always_inline)) void
dgemm_kernel_6x8(int64_t kc, const double *a, int64_t rs, int64_t cs,
                 const double *restrict b, int64_t bs, double *restrict c, int64_t ldc,
                 double alpha, double beta, bool overwrite)
{
    const double *a3 = a + 3 * rs;
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
        __m256d t;
        t = _mm256_broadcast_sd(a);
        c00 = _mm256_fmadd_pd(t, b0, c00);
        c01 = _mm256_fmadd_pd(t, b1, c01);
        t = _mm256_broadcast_sd(a + rs);
        c10 = _mm256_fmadd_pd(t, b0, c10);
        c11 = _mm256_fmadd_pd(t, b1, c11);
        t = _mm256_broadcast_sd(a + 2 * rs);
        c20 = _mm256_fmadd_pd(t, b0, c20);
        c21 = _mm256_fmadd_pd(t, b1, c21);
        t = _mm256_broadcast_sd(a3);
        c30 = _mm256_fmadd_pd(t, b0, c30);
        c31 = _mm256_fmadd_pd(t, b1, c31);
        t = _mm256_broadcast_sd(a3 + rs);
        c40 = _mm256_fmadd_pd(t, b0, c40);
        c41 = _mm256_fmadd_pd(t, b1, c41);
        t = _mm256_broadcast_sd(a3 + 2 * rs);
        c50 = _mm256_fmadd_pd(t, b0, c50);
        c51 = _mm256_fmadd_pd(t, b1, c51);
        a += cs;
        a3 += cs;
        b += bs;
    }
    const __m256d va = _mm256_set1_pd(alpha);
#define TG_STORE_ROW(r, x0, x1)                                                          \
    do {                                                                                 \
        double *cr_ = c + (r) * ldc;                                                     \
        __m256d y0_ = _mm256_mul_pd(va, x0), y1_ = _mm256_mul_pd(va, x1);                \
        if (!overwrite) {                                                                \
            const __m256d vb_ = _mm256_set1_pd(beta);                                    \
            y0_ = _mm256_add_pd(y0_, _mm256_mul_pd(vb_, _mm256_loadu_pd(cr_)));          \
            y1_ = _mm256_add_pd(y1_, _mm256_mul_pd(vb_, _mm256_loadu_pd(cr_ + 4)));      \
        }                                                                                \
        _mm256_storeu_pd(cr_, y0_);                                                      \
        _mm256_storeu_pd(cr_ + 4, y1_);                                                  \
    } while (0)
    TG_STORE_ROW(0, c00, c01);
    TG_STORE_ROW(1, c10, c11);
    TG_STORE_ROW(2, c20, c21);
    TG_STORE_ROW(3, c30, c31);
    TG_STORE_ROW(4, c40, c41);
    TG_STORE_ROW(5, c50, c51);
#undef TG_STORE_ROW
}

/* ---- packing with in-register 8x8 transposes ----------------------------------------- */

/* Transposes the 8x8 block held in r[0..7] (row i in r[i]) in place. */
static inline __attribute__((always_inline)) void transpose8x8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* dst[k*6 + i] = src[i*lda + k] for i < 6, k < kc: 6 rows of A into an MR=6 panel. */
static void spack_a_rows6(const float *src, int64_t lda, int64_t kc, float *dst)
{
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 6; i++)
            r[i] = _mm256_loadu_ps(src + i * lda + k);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8x8(r);
        float *d = dst + k * 6;
        /* Each 8-wide store spills 2 lanes into the next k's slot, which the next store
         * overwrites; the last one stores exactly 6. */
        for (int q = 0; q < 7; q++)
            _mm256_storeu_ps(d + q * 6, r[q]);
        _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi((__m64 *)(void *)(d + 46), _mm256_extractf128_ps(r[7], 1));
    }
    for (; k < kc; k++)
        for (int i = 0; i < 6; i++)
            dst[k * 6 + i] = src[i * lda + k];
}

/* dst[k*16 + j] = src[j*ldb + k] for j < 16, k < kc: 16 rows of B^T into an NR=16 panel. */
static void spack_b_cols16(const float *src, int64_t ldb, int64_t kc, float *dst)
{
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            for (int j = 0; j < 8; j++)
                r[j] = _mm256_loadu_ps(src + (h * 8 + j) * ldb + k);
            transpose8x8(r);
            for (int q = 0; q < 8; q++)
                _mm256_store_ps(dst + (k + q) * 16 + h * 8, r[q]);
        }
    }
    for (; k < kc; k++)
        for (int j = 0; j < 16; j++)
            dst[k * 16 + j] = src[j * ldb + k];
}

/* ---- one or two rows of A: B read in place --------------------------------------------
 * Generation multiplies one row of activations by every weight: each element of B is used
 * once (twice for M = 2), so packing B (a copy of the whole weight per product) costs as
 * much as the arithmetic. Here B is read where it is, in blocks of SM_COLS columns: for
 * M = 1 row after row across the block (smallm_sweep), or for a narrow B in strips of 32
 * columns whose sums stay in registers (smallm_strip); for M = 2 in strips of 16
 * columns, sums in registers; rows fetched ahead by software (consecutive rows are ldb
 * apart, which the hardware prefetchers follow badly across pages).
 *
 * The arithmetic is the driver's for M <= 2, which computes every tile with
 * sgemm_edge_2x16: per K slice (the driver's split, KC 256), the even steps of the slice
 * and the odd ones accumulate in two chains of FMAs from 0, added at the end of the slice,
 * then C = alpha*t (first slice, beta 0) or alpha*t + beta*C (beta 1 after the first
 * slice). The same operations in the same order: the bits are the driver's. */
#define SM_COLS 128   /* columns of one block (a thread's unit of work) */
#define SM_KC 256     /* the driver's deepest K slice (GD_KC below) */
#define SM_AHEAD 8    /* rows of B fetched ahead */
#define SM_NARROW 256 /* a weight up to this many columns wide is walked in strips */

/* C = alpha*t + beta*C on m rows of n columns (t in rows of ldt): the driver's update of
 * an edge tile, overwrite when beta is 0 on the first slice. */
static void smallm_update(int64_t m, int64_t n, const float *t, int64_t ldt, float alpha,
                          float beta, bool first, float *C, int64_t ldc)
{
    const bool overwrite = first && beta == 0;
    const float bt = first ? beta : 1.0f;
    for (int64_t i = 0; i < m; i++) {
        float *cr = C + i * ldc;
        const float *tr = t + i * ldt;
        if (overwrite) {
            for (int64_t j = 0; j < n; j++)
                cr[j] = alpha * tr[j];
        } else {
            for (int64_t j = 0; j < n; j++)
                cr[j] = alpha * tr[j] + bt * cr[j];
        }
    }
}

/* The sums of one K slice (kc rows) for two rows of A (row i at a + i*lda) across a strip
 * of 16 columns (B row k at b + k*ldb); t gets the two rows of 16. */
static void smallm_strip2(int64_t kc, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float *t)
{
    __m256 c[2][2], d[2][2];   /* [row][vector]: even and odd steps */
    for (int i = 0; i < 2; i++)
        for (int v = 0; v < 2; v++)
            c[i][v] = d[i][v] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        const float *b0 = b + k * ldb, *b1 = b0 + ldb;
        _mm_prefetch((const char *)(b0 + SM_AHEAD * ldb), _MM_HINT_T0);
        _mm_prefetch((const char *)(b1 + SM_AHEAD * ldb), _MM_HINT_T0);
        for (int i = 0; i < 2; i++) {
            const __m256 u0 = _mm256_broadcast_ss(a + i * lda + k);
            const __m256 u1 = _mm256_broadcast_ss(a + i * lda + k + 1);
            for (int v = 0; v < 2; v++) {
                c[i][v] = _mm256_fmadd_ps(u0, _mm256_loadu_ps(b0 + 8 * v), c[i][v]);
                d[i][v] = _mm256_fmadd_ps(u1, _mm256_loadu_ps(b1 + 8 * v), d[i][v]);
            }
        }
    }
    if (k < kc) {
        for (int i = 0; i < 2; i++) {
            const __m256 u0 = _mm256_broadcast_ss(a + i * lda + k);
            for (int v = 0; v < 2; v++)
                c[i][v] = _mm256_fmadd_ps(u0, _mm256_loadu_ps(b + k * ldb + 8 * v), c[i][v]);
        }
    }
    for (int i = 0; i < 2; i++)
        for (int v = 0; v < 2; v++)
            _mm256_storeu_ps(t + i * 16 + v * 8, _mm256_add_ps(c[i][v], d[i][v]));
}

/* The same sums for one row of A across n columns (a multiple of 8, at most SM_COLS), B
 * swept row after row as it lies in memory: the even and odd chains of every column are
 * kept in L1 (c, d) instead of registers, so each row of the block is read as one run.
 * Walking a 32-column strip down all K rows instead crossed a page every two rows of a
 * 2 KB-wide weight and ran at about 60% of the sweep's speed (bench/README.md). */
static void smallm_sweep(int64_t n, int64_t kc, const float *a, const float *b, int64_t ldb,
                         float *t)
{
    _Alignas(32) float c[SM_COLS], d[SM_COLS];
    for (int64_t j = 0; j < n; j += 8) {
        _mm256_store_ps(c + j, _mm256_setzero_ps());
        _mm256_store_ps(d + j, _mm256_setzero_ps());
    }
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        const float *b0 = b + k * ldb, *b1 = b0 + ldb;
        const __m256 u0 = _mm256_broadcast_ss(a + k), u1 = _mm256_broadcast_ss(a + k + 1);
        for (int64_t j = 0; j < n; j += 16) {
            _mm_prefetch((const char *)(b0 + SM_AHEAD * ldb + j), _MM_HINT_T0);
            _mm_prefetch((const char *)(b1 + SM_AHEAD * ldb + j), _MM_HINT_T0);
        }
        for (int64_t j = 0; j < n; j += 8) {
            _mm256_store_ps(c + j, _mm256_fmadd_ps(u0, _mm256_loadu_ps(b0 + j),
                                                   _mm256_load_ps(c + j)));
            _mm256_store_ps(d + j, _mm256_fmadd_ps(u1, _mm256_loadu_ps(b1 + j),
                                                   _mm256_load_ps(d + j)));
        }
    }
    if (k < kc) {
        const __m256 u0 = _mm256_broadcast_ss(a + k);
        for (int64_t j = 0; j < n; j += 8)
            _mm256_store_ps(c + j, _mm256_fmadd_ps(u0, _mm256_loadu_ps(b + k * ldb + j),
                                                   _mm256_load_ps(c + j)));
    }
    for (int64_t j = 0; j < n; j += 8)
        _mm256_storeu_ps(t + j, _mm256_add_ps(_mm256_load_ps(c + j), _mm256_load_ps(d + j)));
}

/* The same sums for one row of A across a strip of 8*nv + extra columns (nv = 4 or 8
 * vectors; extra < 8: the block's last few ride along in masked lanes) of a narrow B
 * (rows of at most SM_NARROW floats), the chains in registers and B walked down its kc
 * rows: a row of such a weight is a few cache lines, so the walk stays within few pages,
 * nothing is stored per row as in the sweep, and the extra columns' chains hide in the
 * strip's instead of running one column at a time at the latency of an FMA. Inlined into
 * the two widths below, each compiled for the registers it needs. (Without the unroll
 * pragmas GCC 12 at -O3 stored the chain arrays to the stack at every row.) */
static inline __attribute__((always_inline)) void
smallm_strip(int nv, int64_t kc, const float *a, const float *b, int64_t ldb, float *t,
             int extra)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(extra), lanes);
    __m256 c[8], d[8];                          /* even and odd steps of 8*nv columns */
    __m256 ce = _mm256_setzero_ps(), de = ce;   /* and of the extra ones */
    _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
        c[v] = d[v] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        const float *b0 = b + k * ldb, *b1 = b0 + ldb;
        _Pragma("GCC unroll 4") for (int l = 0; l < 8 * nv; l += 16) {
            _mm_prefetch((const char *)(b0 + SM_AHEAD * ldb + l), _MM_HINT_T0);
            _mm_prefetch((const char *)(b1 + SM_AHEAD * ldb + l), _MM_HINT_T0);
        }
        const __m256 u0 = _mm256_broadcast_ss(a + k), u1 = _mm256_broadcast_ss(a + k + 1);
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++) {
            c[v] = _mm256_fmadd_ps(u0, _mm256_loadu_ps(b0 + 8 * v), c[v]);
            d[v] = _mm256_fmadd_ps(u1, _mm256_loadu_ps(b1 + 8 * v), d[v]);
        }
        if (extra) {
            ce = _mm256_fmadd_ps(u0, _mm256_maskload_ps(b0 + 8 * nv, mask), ce);
            de = _mm256_fmadd_ps(u1, _mm256_maskload_ps(b1 + 8 * nv, mask), de);
        }
    }
    if (k < kc) {
        const float *bk = b + k * ldb;
        const __m256 u0 = _mm256_broadcast_ss(a + k);
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
            c[v] = _mm256_fmadd_ps(u0, _mm256_loadu_ps(bk + 8 * v), c[v]);
        ce = _mm256_fmadd_ps(u0, _mm256_maskload_ps(bk + 8 * nv, mask), ce);
    }
    _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
        _mm256_storeu_ps(t + 8 * v, _mm256_add_ps(c[v], d[v]));
    _mm256_maskstore_ps(t + 8 * nv, mask, _mm256_add_ps(ce, de));
}

static void smallm_strip32(int64_t kc, const float *a, const float *b, int64_t ldb, float *t,
                           int extra)
{
    smallm_strip(4, kc, a, b, ldb, t, extra);
}

/* 64 columns: 18 chains and two broadcasts need more than AVX2's 16 vector registers, and
 * AVX-512VL's 32 hold them (the same AVX2 arithmetic, EVEX-encoded: the same bits). One
 * walk down B reads each row of a 65-wide head once instead of twice. */
__attribute__((target("avx512f,avx512vl")))
static void smallm_strip64(int64_t kc, const float *a, const float *b, int64_t ldb, float *t,
                           int extra)
{
    smallm_strip(8, kc, a, b, ldb, t, extra);
}

/* The same sums for the last few columns (n < 16 for m = 2, n < 8 for m = 1), one column
 * at a time. */
static void smallm_tail(int64_t m, int64_t n, int64_t kc, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float *t)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            float c = 0, d = 0;
            int64_t k = 0;
            for (; k + 2 <= kc; k += 2) {
                c = fmaf(a[i * lda + k], b[k * ldb + j], c);
                d = fmaf(a[i * lda + k + 1], b[(k + 1) * ldb + j], d);
            }
            if (k < kc)
                c = fmaf(a[i * lda + k], b[k * ldb + j], c);
            t[i * n + j] = c + d;
        }
    }
}

/* Rows 0..M-1 (M <= 2) of C, columns 0..n-1 of the given B and C (n <= SM_COLS). */
static void sgemm_smallm_block(int64_t M, int64_t n, int64_t K, float alpha, const float *A,
                               int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                               int64_t ldc)
{
    _Alignas(32) float t[SM_COLS];
    const int64_t nks = (K + SM_KC - 1) / SM_KC, kc0 = (K + nks - 1) / nks;
    /* one row of a narrow B: strips of 32 columns, the last up to 7 more (65-71 columns
       left: one strip of them all, where AVX-512VL's registers hold its chains), and a
       narrower last one swept; of a wide B: the whole block in one sweep; a sweep's last
       n % 8 columns one by one. Two rows: strips of 16 columns, a narrower last one
       column by column. */
    const bool narrow = M == 1 && ldb <= SM_NARROW;
    const bool wide_strips = narrow && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512vl");
    for (int64_t j = 0, nj; j < n; j += nj) {
        const int64_t left = n - j;
        const int64_t w = narrow ? (wide_strips && left > 64 && left < 72 ? 64 : 32)
                                 : M == 1 ? n : 16;
        nj = left < w ? left : narrow && left < w + 8 ? left : w;
        const int64_t n8 = nj / 8 * 8;
        for (int64_t pc = 0; pc < K; pc += kc0) {
            const int64_t kc = kc0 < K - pc ? kc0 : K - pc;
            const float *a = A + pc, *b = B + pc * ldb + j;
            if (M == 2 && nj == w)
                smallm_strip2(kc, a, lda, b, ldb, t);
            else if (narrow && nj >= w)
                (w == 64 ? smallm_strip64 : smallm_strip32)(kc, a, b, ldb, t, (int)(nj - w));
            else if (M == 2)
                smallm_tail(2, nj, kc, a, lda, b, ldb, t);
            else {
                if (n8)
                    smallm_sweep(n8, kc, a, b, ldb, t);
                if (nj > n8)
                    smallm_tail(1, nj - n8, kc, a, lda, b + n8, ldb, t + n8);
            }
            smallm_update(M, nj, t, nj, alpha, beta, pc == 0, C + j, ldc);
        }
    }
}

/* Column block jb of the product. */
static void sgemm_smallm_cols(int64_t jb, int64_t M, int64_t N, int64_t K, float alpha,
                              const float *A, int64_t lda, const float *B, int64_t ldb,
                              float beta, float *C, int64_t ldc)
{
    const int64_t j0 = jb * SM_COLS, n = N - j0 < SM_COLS ? N - j0 : SM_COLS;
    sgemm_smallm_block(M, n, K, alpha, A, lda, B + j0, ldb, beta, C + j0, ldc);
}

void tg_sgemm_avx2_smallm(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                           int64_t ldc)
{
    const int64_t nb = (N + SM_COLS - 1) / SM_COLS;
    const int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
    const bool may_thread = nb > 1 && nth > 1 && M * N * K >= TG_GEMM_PAR_MIN_FMAS;
    const bool par = may_thread && tg_gemm_threads_ok();
    const double t0 = may_thread ? omp_get_wtime() : 0;   /* the guard times both ways */
    if (par) {
#pragma omp parallel for schedule(static)
        for (int64_t jb = 0; jb < nb; jb++)
            sgemm_smallm_cols(jb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {   /* no parallel region at all: even a disabled one costs a team set-up */
        for (int64_t jb = 0; jb < nb; jb++)
            sgemm_smallm_cols(jb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    if (may_thread)
        tg_gemm_took(par, omp_get_wtime() - t0, (double)(M * N * K));
}

#define GD_T float
#define GD_ENTRY tg_sgemm_avx2
#define GD_TILING tg_sgemm_avx2_tiling
#define GD_P(x) sa_##x
#define GD_MR 6
#define GD_NR 16
#define GD_MC 144
#define GD_KC SM_KC
#define GD_KERNEL sgemm_kernel_6x16
#define GD_PACK_A_ROWS spack_a_rows6
#define GD_PACK_B_COLS spack_b_cols16
#define GD_EDGE_KERNEL sgemm_edge
#define GD_PACK_ENTRY tg_sgemm_avx2_pack
#include "tensor/gemm_driver_internal.h"

#define GD_T double
#define GD_ENTRY tg_dgemm_avx2
#define GD_TILING tg_dgemm_avx2_tiling
#define GD_P(x) da_##x
#define GD_MR 6
#define GD_NR 8
#define GD_MC 72
#define GD_KC 256
#define GD_KERNEL dgemm_kernel_6x8
#include "tensor/gemm_driver_internal.h"
