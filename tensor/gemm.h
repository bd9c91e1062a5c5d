/* tensor/gemm.h: general matrix multiply, row-major, the BLAS semantics without the BLAS. */
#ifndef TG_TENSOR_GEMM_H
#define TG_TENSOR_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C = alpha * op(A) @ op(B) + beta * C, all row-major.
 *   op(A) is (M,K): A is (M,K) with row stride lda, or, when trans_a, A is (K,M).
 *   op(B) is (K,N): B is (K,N) with row stride ldb, or, when trans_b, B is (N,K).
 *   C is (M,N) with row stride ldc. beta == 0 never reads C (NaNs in C are ignored).
 * Deterministic: each element of C is summed in an order that depends only on
 * (M,N,K) and the build, never on the number of threads (no split-K across threads).
 * Sizes <= 0 for M or N are a no-op; K == 0 scales C by beta. */
void tg_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
              float beta, float *C, int64_t ldc);
void tg_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
              double beta, double *C, int64_t ldc);

/* C = alpha * A^T @ B + beta * C where the K rows of A (M wide) and of B (N wide) are
 * given by pointer tables: C[i][j] = alpha * sum_k arows[k][i] * brows[k][j] + beta*C[i][j].
 * The weight gradient of many products at once: dW += sum_t X_t^T @ dY_t over rows that
 * live in separate buffers, as one blocked product. Deterministic like tg_sgemm. */
void tg_sgemm_rows(int64_t M, int64_t N, int64_t K, float alpha, const float *const *arows,
                   const float *const *brows, float beta, float *C, int64_t ldc);
void tg_dgemm_rows(int64_t M, int64_t N, int64_t K, double alpha, const double *const *arows,
                   const double *const *brows, double beta, double *C, int64_t ldc);

/* A packed copy of op(B) (B, or B^T when trans_b) for tg_sgemm_prepacked: how many
 * floats it takes (0 when the backend has no packed form: then pass NULL as Bp), and the
 * packing. */
int64_t tg_sgemm_packed_size(int64_t K, int64_t N);
void tg_sgemm_pack(bool trans_b, int64_t K, int64_t N, const float *B, int64_t ldb,
                   float *dst);
/* tg_sgemm(false, trans_b, ...) that may read op(B) from Bp (tg_sgemm_pack's copy of the
 * same B, or NULL) instead of packing B again. Bit-identical to tg_sgemm. */
void tg_sgemm_prepacked(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb,
                        const float *Bp, float beta, float *C, int64_t ldc);

/* The width w at which a float product's columns may be cut: for M >= 3 rows, columns
 * [j, j+n) of op(A) @ op(B), j and n multiples of w, are the same bits as the product
 * with only those columns of op(B) (every micro-tile covers the same columns either
 * way). 0 when there is none (OpenBLAS). */
int64_t tg_sgemm_column_unit(void);

/* Which implementation runs: "avx2-fma", "portable" or "openblas". */
const char *tg_gemm_backend(void);

#ifdef __cplusplus
}
#endif
#endif /* TG_TENSOR_GEMM_H */
