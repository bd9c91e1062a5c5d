/* tensor/gemm_driver_internal.h: the packed, cache-blocked GEMM driver, instantiated per kernel. */
/*
 * Included (several times, no include guard) by gemm.c and gemm_avx2.c after they define:
 *   GD_T                element type (float | double)
 *   GD_ENTRY            name of the driver function to define (see gemm_internal.h)
 *   GD_P(x)             a name prefix for this instantiation's static helpers
 *   GD_MR, GD_NR        micro-tile rows and columns
 *   GD_MC, GD_KC        cache blocks: rows of a private A block (a multiple of GD_MR), K slice
 *   GD_KERNEL           static function computing one GD_MR x GD_NR tile:
 *       void kernel(int64_t kc, const T *a, const T *b, T *c, int64_t ldc,
 *                   T alpha, T beta, bool overwrite)
 *     a: kc x MR packed (a[k*MR + i]), b: kc x NR packed (b[k*NR + j]), both 64-byte
 *     aligned; acc = sum over k in increasing order (acc starts at 0); then
 *     c = alpha*acc when overwrite (c is not read), else c = alpha*acc + beta*c.
 * and optionally (faster packing of the transposing cases, full panels only):
 *   GD_PACK_A_ROWS(src, lda, kc, dst)  dst[k*MR + i] = src[i*lda + k], i < MR, k < kc
 *   GD_PACK_B_COLS(src, ldb, kc, dst)  dst[k*NR + j] = src[j*ldb + k], j < NR, k < kc
 *   GD_EDGE_KERNEL(mr, nr, kc, a, b, t) for an edge tile (mr < MR or nr < NR): either
 *     writes the raw sums of (at least) its mr x nr part to t (rows of NR) and returns
 *     true, or returns false (the full kernel is used); must depend on (mr, nr) only
 *
 * The design is BLIS's: loop over NC-wide column blocks of op(B), then KC-deep slices
 * of K (the slice size depends on K alone), pack the op(B) slice into NR-wide panels,
 * then for each MC-tall row block pack op(A) into MR-tall panels and run the micro-kernel
 * over the (panel of B, panel of A) tiles. Transposes are absorbed by the packing.
 *
 * Threads share the packed buffers and split the packing and the tile loops only; every
 * tile is computed whole by one thread, and K slices are applied one after another
 * (barriers between them), so each element of C is summed in the same order whatever
 * the number of threads: results are bit-identical for any thread count.
 */

#define GD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GD_ALIGN 64
#define GD_B_BUDGET ((size_t)4 << 20)           /* bytes of packed op(B) per column block */
#define GD_A_SHARED_SLICE ((size_t)160 << 10)   /* shared op(A): bytes per K slice (L2) */
#define GD_A_SHARED_TOTAL ((size_t)2 << 20)     /* shared op(A): bytes in all */

typedef struct GD_P(ctx) {
    bool ta, tb;
    int64_t M, N, K;
    GD_T alpha, beta;
    const GD_T *A, *B;
    GD_T *C;
    int64_t lda, ldb, ldc;
    int64_t kc, nks;     /* depth of a K slice (the last one may be shorter), count */
    int64_t nc;          /* width of a column block (a multiple of NR) */
    int64_t mround;      /* M rounded up to MR */
    bool share_a;        /* all of op(A) packed once and shared (else per-thread blocks) */
    GD_T *ap;            /* shared: mround x K; else nth blocks of MC x kc */
    GD_T *bp;            /* shared: K x nc, every slice of the column block */
} GD_P(ctx);

/* Packs MR rows of op(A) (rows i0.., K slice pc..pc+kc) as dst[k*MR + i]; rows past M are 0. */
static __attribute__((noinline)) void GD_P(pack_a)(const GD_P(ctx) *x, int64_t i0, int64_t pc, int64_t kc, GD_T *dst)
{
    int64_t mr = GD_MIN((int64_t)GD_MR, x->M - i0);
    if (!x->ta) {                         /* op(A)(i,k) = A[i*lda + k] */
#ifdef GD_PACK_A_ROWS
        if (mr == GD_MR) {
            GD_PACK_A_ROWS(x->A + i0 * x->lda + pc, x->lda, kc, dst);
            return;
        }
#endif
        const GD_T *rows[GD_MR];
        for (int64_t i = 0; i < GD_MR; i++)
            rows[i] = x->A + (i < mr ? i0 + i : i0) * x->lda + pc;
        if (mr == GD_MR) {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t i = 0; i < GD_MR; i++)
                    dst[k * GD_MR + i] = rows[i][k];
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t i = 0; i < GD_MR; i++)
                    dst[k * GD_MR + i] = i < mr ? rows[i][k] : (GD_T)0;
        }
    } else {                              /* op(A)(i,k) = A[k*lda + i] */
        for (int64_t k = 0; k < kc; k++) {
            const GD_T *s = x->A + (pc + k) * x->lda + i0;
            GD_T *d = dst + k * GD_MR;
            if (mr == GD_MR) {
                memcpy(d, s, GD_MR * sizeof(GD_T));
            } else {
                for (int64_t i = 0; i < GD_MR; i++)
                    d[i] = i < mr ? s[i] : (GD_T)0;
            }
        }
    }
}

/* Packs NR columns of op(B) (columns j0.., K slice pc..pc+kc) as dst[k*NR + j]; columns past
 * N are 0. */
static __attribute__((noinline)) void GD_P(pack_b)(const GD_P(ctx) *x, int64_t j0, int64_t pc, int64_t kc, GD_T *dst)
{
    int64_t nr = GD_MIN((int64_t)GD_NR, x->N - j0);
    if (!x->tb) {                         /* op(B)(k,j) = B[k*ldb + j] */
        for (int64_t k = 0; k < kc; k++) {
            const GD_T *s = x->B + (pc + k) * x->ldb + j0;
            GD_T *d = dst + k * GD_NR;
            if (nr == GD_NR) {
                memcpy(d, s, GD_NR * sizeof(GD_T));
            } else {
                for (int64_t j = 0; j < GD_NR; j++)
                    d[j] = j < nr ? s[j] : (GD_T)0;
            }
        }
    } else {                              /* op(B)(k,j) = B[j*ldb + k] */
#ifdef GD_PACK_B_COLS
        if (nr == GD_NR) {
            GD_PACK_B_COLS(x->B + j0 * x->ldb + pc, x->ldb, kc, dst);
            return;
        }
#endif
        const GD_T *cols[GD_NR];
        for (int64_t j = 0; j < GD_NR; j++)
            cols[j] = x->B + (j < nr ? j0 + j : j0) * x->ldb + pc;
        if (nr == GD_NR) {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = 0; j < GD_NR; j++)
                    dst[k * GD_NR + j] = cols[j][k];
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = 0; j < GD_NR; j++)
                    dst[k * GD_NR + j] = j < nr ? cols[j][k] : (GD_T)0;
        }
    }
}

/* One MR x NR tile of C at (i, j) from packed panels a, b over a K slice of depth kc. */
static inline void GD_P(tile)(const GD_P(ctx) *x, int64_t i, int64_t j, int64_t kc,
                              const GD_T *a, const GD_T *b, bool first)
{
    bool overwrite = first && x->beta == 0;
    GD_T beta = first ? x->beta : (GD_T)1;
    GD_T *c = x->C + i * x->ldc + j;
    int64_t mr = GD_MIN((int64_t)GD_MR, x->M - i), nr = GD_MIN((int64_t)GD_NR, x->N - j);
    if (mr == GD_MR && nr == GD_NR) {
        GD_KERNEL(kc, a, b, c, x->ldc, x->alpha, beta, overwrite);
        return;
    }
    /* Edge tile: the same kernel into a scratch tile (alpha 1 keeps acc exact), then the
     * same update formula on the valid part. */
    _Alignas(GD_ALIGN) GD_T t[GD_MR * GD_NR];
#ifdef GD_EDGE_KERNEL
    if (!GD_EDGE_KERNEL(mr, nr, kc, a, b, t))
#endif
        GD_KERNEL(kc, a, b, t, GD_NR, (GD_T)1, (GD_T)0, true);
    for (int64_t r = 0; r < mr; r++) {
        GD_T *cr = c + r * x->ldc;
        const GD_T *tr = t + r * GD_NR;
        if (overwrite) {
            for (int64_t q = 0; q < nr; q++)
                cr[q] = x->alpha * tr[q];
        } else {
            for (int64_t q = 0; q < nr; q++)
                cr[q] = x->alpha * tr[q] + beta * cr[q];
        }
    }
}

/* Everything, run by each of nth threads (tid) of a team, or by one thread alone.
 *
 * For each column block (all of it when it fits, see GD_ENTRY):
 *   1. the threads pack op(B) for the whole K (every slice) into shared panels, and, in
 *      shared-A mode, op(A) too; one barrier;
 *   2. shared-A mode (few rows): each thread takes a contiguous range of B panels and runs
 *      every tile in it; row mode: each thread takes a contiguous range of A panels, packs
 *      them MC rows at a time into its private buffer, slice by slice, and runs the tiles.
 * Either way one thread computes a tile through all K slices in increasing order: no
 * barrier is needed between slices, and the summation order is the same for any nth. */
static void GD_P(run)(const GD_P(ctx) *x, int tid, int nth)
{
#define GD_SPLIT(n, lo, hi)                                    \
    do {                                                       \
        (lo) = (n) * tid / nth;                                \
        (hi) = (n) * (tid + 1) / nth;                          \
    } while (0)
    const int64_t N = x->N, K = x->K, kc0 = x->kc, nks = x->nks;
    const int64_t npm = x->mround / GD_MR;
    for (int64_t jc = 0; jc < N; jc += x->nc) {
        int64_t nc = GD_MIN(x->nc, N - jc);
        int64_t npn = (nc + GD_NR - 1) / GD_NR, ncr = npn * GD_NR;
        int64_t lo, hi;

        /* 1. Pack. Slice s starts at s*kc0; its panels are contiguous at offset
         *    start * (rounded width), panel p at + p * NR * depth. */
        int64_t nb = nks * npn, na = x->share_a ? nks * npm : 0;
        GD_SPLIT(nb + na, lo, hi);
        for (int64_t it = lo; it < hi; it++) {
            if (it < nb) {
                int64_t sl = it / npn, p = it % npn, pc = sl * kc0, kc = GD_MIN(kc0, K - pc);
                GD_P(pack_b)(x, jc + p * GD_NR, pc, kc, x->bp + pc * ncr + p * GD_NR * kc);
            } else {
                int64_t sl = (it - nb) / npm, p = (it - nb) % npm, pc = sl * kc0;
                int64_t kc = GD_MIN(kc0, K - pc);
                GD_P(pack_a)(x, p * GD_MR, pc, kc, x->ap + pc * x->mround + p * GD_MR * kc);
            }
        }
        if (nth > 1) {
#pragma omp barrier
        }

        /* 2. Tiles. */
        if (x->share_a) {
            GD_SPLIT(npn, lo, hi);
            for (int64_t jr = lo; jr < hi; jr++) {
                for (int64_t pc = 0; pc < K; pc += kc0) {
                    int64_t kc = GD_MIN(kc0, K - pc);
                    const GD_T *b = x->bp + pc * ncr + jr * GD_NR * kc;
                    const GD_T *a = x->ap + pc * x->mround;
                    for (int64_t ir = 0; ir < npm; ir++)
                        GD_P(tile)(x, ir * GD_MR, jc + jr * GD_NR, kc, a + ir * GD_MR * kc, b,
                                   pc == 0);
                }
            }
        } else {
            GD_T *ap = x->ap + (size_t)tid * GD_MC * kc0;     /* this thread's A block */
            GD_SPLIT(npm, lo, hi);
            for (int64_t i0 = lo; i0 < hi; i0 += GD_MC / GD_MR) {
                int64_t np = GD_MIN((int64_t)(GD_MC / GD_MR), hi - i0);
                for (int64_t pc = 0; pc < K; pc += kc0) {
                    int64_t kc = GD_MIN(kc0, K - pc);
                    for (int64_t p = 0; p < np; p++)
                        GD_P(pack_a)(x, (i0 + p) * GD_MR, pc, kc, ap + p * GD_MR * kc);
                    for (int64_t jr = 0; jr < npn; jr++) {
                        const GD_T *b = x->bp + pc * ncr + jr * GD_NR * kc;
                        for (int64_t p = 0; p < np; p++)
                            GD_P(tile)(x, (i0 + p) * GD_MR, jc + jr * GD_NR, kc,
                                       ap + p * GD_MR * kc, b, pc == 0);
                    }
                }
            }
        }
        if (jc + x->nc < N && nth > 1) {   /* the next block repacks the shared buffers */
#pragma omp barrier
        }
    }
#undef GD_SPLIT
}

/* Share of the work the busiest of nth threads does when n equal parts are split. */
static double GD_P(balance)(int64_t n, int nth)
{
    int64_t most = (n + nth - 1) / nth;
    return (double)n / (double)(most * nth);
}

bool GD_ENTRY(bool ta, bool tb, int64_t M, int64_t N, int64_t K, GD_T alpha,
              const GD_T *A, int64_t lda, const GD_T *B, int64_t ldb,
              GD_T beta, GD_T *C, int64_t ldc)
{
    GD_P(ctx) x = {
        .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc,
    };
    /* K slices of (nearly) equal depth <= KC: the split depends on K alone, and so does
     * the order in which each element of C is summed. */
    x.nks = (K + GD_KC - 1) / GD_KC;
    x.kc = (K + x.nks - 1) / x.nks;
    x.mround = (M + GD_MR - 1) / GD_MR * GD_MR;

    int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nth < 1 || (double)M * (double)N * (double)K < (double)TG_GEMM_PAR_MIN_FMAS)
        nth = 1;

    /* Column block: all of op(B) packed at once when it fits the budget. */
    int64_t nround = (N + GD_NR - 1) / GD_NR * GD_NR;
    int64_t ncap = (int64_t)(GD_B_BUDGET / ((size_t)K * sizeof(GD_T))) / GD_NR * GD_NR;
    x.nc = GD_MIN(nround, ncap > GD_NR ? ncap : GD_NR);

    /* Few rows: pack op(A) once, shared, and split the columns between threads, unless
     * splitting the rows balances clearly better. */
    size_t aslice = (size_t)x.mround * (size_t)x.kc * sizeof(GD_T);
    int64_t npn = (x.nc + GD_NR - 1) / GD_NR;
    x.share_a = aslice <= GD_A_SHARED_SLICE && aslice * (size_t)x.nks <= GD_A_SHARED_TOTAL &&
                GD_P(balance)(npn, nth) + 0.02 >= GD_P(balance)(x.mround / GD_MR, nth);

    size_t abytes = x.share_a ? aslice * (size_t)x.nks
                              : (size_t)nth * GD_MC * (size_t)x.kc * sizeof(GD_T);
    abytes = (abytes + GD_ALIGN - 1) / GD_ALIGN * GD_ALIGN;
    size_t bbytes = (size_t)K * (size_t)x.nc * sizeof(GD_T);
    char *buf = tg__gemm_scratch(abytes + bbytes);
    if (!buf)
        return false;
    x.ap = (GD_T *)(void *)buf;
    x.bp = (GD_T *)(void *)(buf + abytes);

    if (nth == 1) {
        GD_P(run)(&x, 0, 1);
    } else {
#pragma omp parallel num_threads(nth)
        {
            int t = omp_get_thread_num(), n = omp_get_num_threads();
            GD_P(run)(&x, t, n);
        }
    }
    return true;
}

#undef GD_MIN
#undef GD_ALIGN
#undef GD_B_BUDGET
#undef GD_A_SHARED_SLICE
#undef GD_A_SHARED_TOTAL
