/* tensor/gemm_driver_internal.h: the packed, cache-blocked GEMM driver, instantiated per kernel. */
/*
 * Included (several times, no include guard) by gemm.c and gemm_avx2.c after they define
 * (this file #undefs them all at its end, so the next instantiation starts clean):
 *   GD_T                element type (float | double)
 *   GD_ENTRY            name of the driver function to define (see gemm_internal.h)
 *   GD_TILING           name of the tg_gemm_tiling constant to define (its blocking,
 *                       from which tg_gemm_choose_mode picks the mode)
 *   GD_P(x)             a name prefix for this instantiation's static helpers
 *   GD_MR, GD_NR        micro-tile rows and columns
 *   GD_MC, GD_KC        rows of a packed A block (a multiple of GD_MR), deepest K slice
 *   GD_KERNEL           function computing one GD_MR x GD_NR tile:
 *       void kernel(int64_t kc, const T *a, int64_t rs, int64_t cs, const T *b,
 *                   int64_t bs, T *c, int64_t ldc, T alpha, T beta, bool overwrite)
 *     element (i,k) of the A panel is a[i*rs + k*cs] (packed: rs 1, cs MR; or A read in
 *     place), element (k,j) of the B panel is b[k*bs + j] (packed: bs NR; or B in place);
 *     acc = sum over k in increasing order (acc starts at 0); then
 *     c = alpha*acc when overwrite (c is not read), else c = alpha*acc + beta*c.
 * and optionally:
 *   GD_PACK_A_ROWS(src, lda, kc, dst)  dst[k*MR + i] = src[i*lda + k], i < MR, k < kc
 *   GD_PACK_B_COLS(src, ldb, kc, dst)  dst[k*NR + j] = src[j*ldb + k], j < NR, k < kc
 *     (faster packing of the transposing cases, full panels only);
 *   GD_EDGE_KERNEL(mr, nr, kc, a, rs, cs, b, bs, t) for an edge tile (mr < MR or nr < NR):
 *     either writes the raw sums of (at least) its mr x nr part to t (rows of NR) and
 *     returns true, or returns false (the full kernel is used); the choice must depend
 *     on (mr, nr) only;
 *   GD_PACK_ENTRY       name of a function to define that packs op(B) once for the bpre
 *     argument (see gemm_internal.h); only the float instantiations use it.
 *
 * The design is BLIS's: op(B) is packed into NR-wide panels and op(A) into MR-tall panels
 * (transposes are absorbed by the packing, never materialised), K is cut into slices of
 * (nearly) equal depth <= KC that depend on K alone, and a register-tiled micro-kernel
 * computes MR x NR tiles of C slice after slice. Three ways to run it (tg_gemm_mode;
 * tg_gemm_choose_mode in gemm.c picks one):
 *
 *   columns: when op(A) is small (few rows: the recurrent products with
 *     M = batch), the threads take runs of up to 4 B panels from a shared counter
 *     (guided: long runs first, short ones last, see take_run); for a
 *     run, slice by slice, a thread packs the slice into its own buffer (or reads a copy
 *     of op(B) packed once by the caller) and computes every tile below it (the tiles get
 *     their slices in order). A is read in place (no packing but for a partial last
 *     panel), A^T is packed by every thread into its own buffer (cheap next to the N/nth
 *     multiply-adds per element). No data is shared and no barrier is needed.
 *   slices: otherwise, when K takes more than one slice and a slice of op(B) is not too
 *     large (weight gradients, large square products), one K slice of op(B)
 *     at a time is packed together (a barrier per slice) and each thread computes a fixed
 *     share of the A panels against it (see run_slices).
 *   rows: otherwise (one slice, or a very wide op(B)) the threads pack all K slices of a
 *     column block of op(B) into a shared buffer (one barrier), then take runs of A panels
 *     from the shared counter, pack each run into their own buffer, slice by slice, and
 *     compute its tiles.
 *
 * Either way one thread computes a tile through all K slices in increasing order, and
 * which kernel computes an element depends only on (M, N): each element of C is summed
 * in the same order for any number of threads, so results are bit-identical.
 */

#define GD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GD_ALIGN 64
#define GD_ROUNDUP(n) (((n) + GD_ALIGN - 1) / GD_ALIGN * GD_ALIGN)
/* Rows mode: bytes of packed op(B) per column block; L3 holds it, so a weight gradient
 * 512 columns wide packs op(A) only once. */
#define GD_B_BUDGET ((size_t)8 << 20)
/* Columns mode: B panels packed together, so that packing reads whole runs of a row. */
#define GD_GROUP 4
/* Rows of B fetched ahead while packing: rows ldb apart defeat the hardware prefetchers. */
#define GD_PREFETCH_ROWS 8

typedef struct GD_P(ctx) {
    bool ta, tb;
    int64_t M, N, K;
    GD_T alpha, beta;
    const GD_T *A, *B;
    const GD_T *const *arows, *const *brows;  /* row tables (ta and !tb only), or NULL */
    const GD_T *bpre;    /* columns mode: op(B) packed by GD_PACK_ENTRY (panel p at
                            p*K*NR), or NULL */
    GD_T *C;
    int64_t lda, ldb, ldc;
    int64_t kc, nks;     /* depth of a K slice (the last one may be shorter), count */
    int64_t npm, npn;    /* A panels (M rounded up to MR, / MR), B panels */
    tg_gemm_mode mode;
    _Atomic int64_t *next_panel;   /* the next B (columns) or A (rows) panel to take */
    int64_t nc;          /* rows mode: width of a column block (a multiple of NR) */
    GD_T *bp;            /* shared packed op(B): rows mode K x nc (every slice of a column
                            block), slices mode two slices; columns mode none */
    char *priv;          /* per-thread buffers, priv_bytes apart */
    size_t priv_bytes;
} GD_P(ctx);

/* Row k of A (when ta: op(A)(i,k) = row[i]) and of B (when !tb: op(B)(k,j) = row[j]):
 * from the row tables when given, else at stride lda / ldb. */
static inline const GD_T *GD_P(arow)(const GD_P(ctx) *x, int64_t k)
{
    return x->arows ? x->arows[k] : x->A + k * x->lda;
}
static inline const GD_T *GD_P(brow)(const GD_P(ctx) *x, int64_t k)
{
    return x->brows ? x->brows[k] : x->B + k * x->ldb;
}

/* Packs MR rows of op(A) (rows i0.., K slice pc..pc+kc) as dst[k*MR + i]; rows past M are 0. */
static void GD_P(pack_a)(const GD_P(ctx) *x, int64_t i0, int64_t pc, int64_t kc, GD_T *dst)
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
            const GD_T *s = GD_P(arow)(x, pc + k) + i0;
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
static void GD_P(pack_b)(const GD_P(ctx) *x, int64_t j0, int64_t pc, int64_t kc, GD_T *dst)
{
    int64_t nr = GD_MIN((int64_t)GD_NR, x->N - j0);
    if (!x->tb) {                         /* op(B)(k,j) = B[k*ldb + j] */
        for (int64_t k = 0; k < kc; k++) {
            const GD_T *s = GD_P(brow)(x, pc + k) + j0;
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

/* One MR x NR tile of C at (i, j) over a K slice of depth kc: A panel element (r,k) at
 * a[r*rs + k*cs], B panel element (k,q) at b[k*bs + q]. The first slice applies beta, the
 * later ones add. */
static inline __attribute__((always_inline)) void
GD_P(tile)(const GD_P(ctx) *x, int64_t i, int64_t j, int64_t kc, const GD_T *a, int64_t rs,
           int64_t cs, const GD_T *b, int64_t bs, bool first)
{
    bool overwrite = first && x->beta == 0;
    GD_T beta = first ? x->beta : (GD_T)1;
    GD_T *c = x->C + i * x->ldc + j;
    int64_t mr = GD_MIN((int64_t)GD_MR, x->M - i), nr = GD_MIN((int64_t)GD_NR, x->N - j);
    if (mr == GD_MR && nr == GD_NR) {
        GD_KERNEL(kc, a, rs, cs, b, bs, c, x->ldc, x->alpha, beta, overwrite);
        return;
    }
    /* Edge tile: raw sums into a scratch tile (alpha 1 keeps them exact), then the same
     * update formula on the part that exists. */
    _Alignas(GD_ALIGN) GD_T t[GD_MR * GD_NR];
#ifdef GD_EDGE_KERNEL
    if (!GD_EDGE_KERNEL(mr, nr, kc, a, rs, cs, b, bs, t))
#endif
        GD_KERNEL(kc, a, rs, cs, b, bs, t, GD_NR, (GD_T)1, (GD_T)0, true);
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

#define GD_SPLIT(n, lo, hi)                                    \
    do {                                                       \
        (lo) = (n) * tid / nth;                                \
        (hi) = (n) * (tid + 1) / nth;                          \
    } while (0)

/* Takes the next run of panels from the shared counter, guided: half of an even share of
 * what is left (1 to cap), so early runs are long (a packed slice of B serves many A
 * panels) and the last ones short (the threads finish together). Sets *first; false when
 * none is left. */
static bool GD_P(take_run)(_Atomic int64_t *next, int64_t n, int nth, int64_t cap,
                           int64_t *first, int64_t *count)
{
    int64_t at = atomic_load_explicit(next, memory_order_relaxed);
    for (;;) {
        if (at >= n)
            return false;
        int64_t run = (n - at) / (2 * (int64_t)nth);
        run = run < 1 ? 1 : run > cap ? cap : run;
        if (atomic_compare_exchange_weak_explicit(next, &at, at + run, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *first = at;
            *count = run < n - at ? run : n - at;
            return true;
        }
    }
}

/* Packs np panels, each w elements wide, from the K rows of a matrix given by row(x, k)
 * (A's rows when op(A) = A^T, B's when op(B) = B), starting at element off of each row:
 * rows pc..pc+kc, panel p at dst + p*kc*w, element (k, j) at [(k-pc)*w + j]; elements past
 * `valid` (counted from off) are 0. Each row is read once, as one run of np*w elements,
 * and rows are fetched 8 ahead: consecutive rows are ld apart, which the hardware
 * prefetchers follow badly (in training the weights come from memory). */
static inline __attribute__((always_inline)) void
GD_P(pack_row_panels)(const GD_P(ctx) *x, const GD_T *(*row)(const GD_P(ctx) *, int64_t),
                      int64_t off, int64_t valid, int64_t w, int64_t np, int64_t pc,
                      int64_t kc, GD_T *dst)
{
    const int64_t m = GD_MIN(np * w, valid);
    for (int64_t k = 0; k < kc; k++) {
        const GD_T *src = row(x, pc + k) + off;
        if (pc + k + GD_PREFETCH_ROWS < x->K) {
            const char *ahead = (const char *)(row(x, pc + k + GD_PREFETCH_ROWS) + off);
            for (int64_t o = 0; o < m * (int64_t)sizeof(GD_T); o += 64)
                __builtin_prefetch(ahead + o);
        }
        for (int64_t p = 0; p < np; p++) {
            GD_T *d = dst + p * kc * w + k * w;
            int64_t n = GD_MIN(w, m - p * w);
            if (n == w) {
                memcpy(d, src + p * w, (size_t)w * sizeof(GD_T));
            } else {
                for (int64_t j = 0; j < w; j++)
                    d[j] = j < n ? src[p * w + j] : (GD_T)0;
            }
        }
    }
}

/* g NR-wide panels of op(B) at columns j0.. (K slice pc..pc+kc), panel q at dst + q*kc*NR:
 * B not transposed read a row at a time (one run of g*NR elements), B^T panel by panel. */
static void GD_P(pack_b_panels)(const GD_P(ctx) *x, int64_t j0, int64_t g, int64_t pc,
                                int64_t kc, GD_T *dst)
{
    if (!x->tb)
        GD_P(pack_row_panels)(x, GD_P(brow), j0, x->N - j0, GD_NR, g, pc, kc, dst);
    else
        for (int64_t q = 0; q < g; q++)
            GD_P(pack_b)(x, j0 + q * GD_NR, pc, kc, dst + q * kc * GD_NR);
}

/* np MR-row panels of op(A) at rows i0.. (K slice pc..pc+kc), panel p at dst + p*kc*MR:
 * A^T read a row at a time (one run of np*MR elements), A panel by panel. */
static void GD_P(pack_a_panels)(const GD_P(ctx) *x, int64_t i0, int64_t np, int64_t pc,
                                int64_t kc, GD_T *dst)
{
    if (x->ta)
        GD_P(pack_row_panels)(x, GD_P(arow), i0, x->M - i0, GD_MR, np, pc, kc, dst);
    else
        for (int64_t p = 0; p < np; p++)
            GD_P(pack_a)(x, i0 + p * GD_MR, pc, kc, dst + p * kc * GD_MR);
}

/* The tiles of np packed A panels (rows i0..) against npn packed B panels (columns j0..)
 * over one K slice (pc, depth kc); B panel q at b + q*kc*NR. */
static void GD_P(panel_tiles)(const GD_P(ctx) *x, int64_t i0, int64_t np, const GD_T *ap,
                              int64_t j0, int64_t npn, const GD_T *b, int64_t pc, int64_t kc)
{
    for (int64_t q = 0; q < npn; q++)
        for (int64_t p = 0; p < np; p++)
            GD_P(tile)(x, i0 + p * GD_MR, j0 + q * GD_NR, kc, ap + p * GD_MR * kc, 1, GD_MR,
                       b + q * GD_NR * kc, GD_NR, pc == 0);
}

/* Columns mode, run by thread tid of nth: takes runs of B panels from the shared counter
 * until none is left, and computes every tile below them. Taking them as they come keeps
 * both threads busy when one runs slower (the A the other thread just wrote sits in that
 * thread's cache); which thread computes a tile never changes its arithmetic. */
static void GD_P(run_columns)(const GD_P(ctx) *x, int tid, int nth)
{
    const int64_t K = x->K, kc0 = x->kc;
    /* Private: one K slice of GROUP B panels (bpan), and packed A panels
     * (slice at pc: apan + pc*pw + (p-p0)*MR*depth): all of them when op(A) is A^T (read in
     * place, its rows would be one cache line per k, often in the same cache set), else
     * only the partial last one, if any. */
    GD_T *bpan = (GD_T *)(void *)(x->priv + (size_t)tid * x->priv_bytes);
    GD_T *apan = bpan + GD_ROUNDUP(kc0 * GD_GROUP * GD_NR * (int64_t)sizeof(GD_T)) /
                            (int64_t)sizeof(GD_T);
    const int64_t p0 = x->ta ? 0 : x->M / GD_MR;   /* first packed panel */
    const int64_t pw = (x->npm - p0) * GD_MR;        /* rows of packed panels */
    for (int64_t pc = 0; pc < K; pc += kc0) {
        int64_t kc = GD_MIN(kc0, K - pc);
        for (int64_t p = p0; p < x->npm; p++)
            GD_P(pack_a)(x, p * GD_MR, pc, kc, apan + pc * pw + (p - p0) * GD_MR * kc);
    }
    /* A read in place: element (i,k) of op(A) at A[i*lda + k]. */
    const int64_t lda = x->lda;
    /* One A panel (M <= MR: generation's one-row products): every B element is used once,
     * so full panels of B (not transposed, not a row table) are read in place, where
     * packing them would copy the whole weight for every product. Same kernels, same
     * order of summation: the bits do not change. */
    const bool b_in_place = x->npm == 1 && !x->tb && !x->brows && !x->bpre;
    int64_t jg, g;
    while (GD_P(take_run)(x->next_panel, x->npn, nth, GD_GROUP, &jg, &g)) {
        /* A group of B panels, one K slice at a time (panel q at bpan + q*kc*NR; B^T is
         * packed panel by panel with transposes), then every tile below them. */
        for (int64_t pc = 0; pc < K; pc += kc0) {
            const int64_t kc = GD_MIN(kc0, K - pc);
            /* panels read in place: all of them but a partial last one */
            const int64_t gin = !b_in_place ? 0 : GD_MIN(g, x->N / GD_NR - jg);
            if (!x->bpre && gin < g)   /* else packed once by the caller */
                GD_P(pack_b_panels)(x, (jg + gin) * GD_NR, g - gin, pc, kc, bpan);
            for (int64_t q = 0; q < g; q++) {
                const int64_t j = (jg + q) * GD_NR;
                const GD_T *b = x->bpre ? x->bpre + (jg + q) * K * GD_NR + pc * GD_NR
                                : q < gin ? x->B + pc * x->ldb + j
                                          : bpan + (q - gin) * kc * GD_NR;
                const int64_t bs = q < gin ? x->ldb : GD_NR;
                for (int64_t ir = 0; ir < x->npm; ir++) {
                    int64_t i = ir * GD_MR;
                    if (ir < p0)
                        GD_P(tile)(x, i, j, kc, x->A + i * lda + pc, lda, 1, b, bs, pc == 0);
                    else
                        GD_P(tile)(x, i, j, kc, apan + pc * pw + (ir - p0) * GD_MR * kc, 1,
                                   GD_MR, b, bs, pc == 0);
                }
            }
        }
    }
}

/* Rows mode, run by thread tid of nth (barriers when nth > 1): the threads pack a column
 * block of op(B) together, then take runs of A panels from the shared counter (as in
 * columns mode) and compute their tiles. */
static void GD_P(run_rows)(const GD_P(ctx) *x, int tid, int nth)
{
    const int64_t N = x->N, K = x->K, kc0 = x->kc, npm = x->npm;
    GD_T *ap = (GD_T *)(void *)(x->priv + (size_t)tid * x->priv_bytes);   /* MC x kc */
    for (int64_t jc = 0; jc < N; jc += x->nc) {
        int64_t nc = GD_MIN(x->nc, N - jc);
        int64_t npn = (nc + GD_NR - 1) / GD_NR, ncr = npn * GD_NR;
        int64_t lo, hi;
        if (tid == 0)   /* nobody takes panels before the barrier below */
            atomic_store_explicit(x->next_panel, 0, memory_order_relaxed);
        /* Shared pack of every slice: slice at pc holds panel p at pc*ncr + p*NR*depth;
         * B not transposed is packed GROUP panels at a time (one run of each row). */
        int64_t ng = (npn + GD_GROUP - 1) / GD_GROUP, items = x->nks * ng;
        GD_SPLIT(items, lo, hi);
        for (int64_t it = lo; it < hi; it++) {
            int64_t sl = it / ng, p0 = it % ng * GD_GROUP, pc = sl * kc0;
            int64_t kc = GD_MIN(kc0, K - pc), g = GD_MIN((int64_t)GD_GROUP, npn - p0);
            GD_P(pack_b_panels)(x, jc + p0 * GD_NR, g, pc, kc, x->bp + pc * ncr + p0 * GD_NR * kc);
        }
        if (nth > 1) {
#pragma omp barrier
        }
        int64_t i0, np;
        while (GD_P(take_run)(x->next_panel, npm, nth, GD_MC / GD_MR, &i0, &np)) {
            for (int64_t pc = 0; pc < K; pc += kc0) {
                int64_t kc = GD_MIN(kc0, K - pc);
                GD_P(pack_a_panels)(x, i0 * GD_MR, np, pc, kc, ap);
                GD_P(panel_tiles)(x, i0 * GD_MR, np, ap, jc, npn, x->bp + pc * ncr, pc, kc);
            }
        }
        if (jc + x->nc < N && nth > 1) {   /* the next block repacks the shared buffer */
#pragma omp barrier
        }
    }
}

/* Slices mode, run by thread tid of nth (a barrier per K slice when nth > 1): for a
 * product with more than one K slice (weight gradients: K = T*B rows), one K slice of op(B)
 * at a time is packed by the threads together into one of two shared buffers, and each
 * thread computes its own fixed share of the A panels against it, MC rows at a time. A
 * slice then streams from cache past a thread's share once per MC rows, where the rows
 * mode would pack every slice up front and stream all of them past every run of A panels
 * (its guided runs also get short at the end), reading op(B) from L3 more often; the
 * measurement is in bench/README.md. Two buffers: a thread packing slice s+1
 * cannot overwrite the slice another thread still reads, which it only passes after the
 * barrier of s+1. */
static void GD_P(run_slices)(const GD_P(ctx) *x, int tid, int nth)
{
    const int64_t K = x->K, kc0 = x->kc, npn = x->npn, ncr = npn * GD_NR;
    GD_T *ap = (GD_T *)(void *)(x->priv + (size_t)tid * x->priv_bytes);   /* MC x kc */
    int64_t lo, hi, plo, phi;
    const int64_t ng = (npn + GD_GROUP - 1) / GD_GROUP;
    GD_SPLIT(x->npm, plo, phi);           /* this thread's A panels, for every slice */
    GD_SPLIT(ng, lo, hi);                 /* and its groups of B panels to pack */
    for (int64_t pc = 0, sl = 0; pc < K; pc += kc0, sl++) {
        const int64_t kc = GD_MIN(kc0, K - pc);
        GD_T *bs = x->bp + (sl & 1) * kc0 * ncr;   /* panel p at p*NR*kc */
        for (int64_t gi = lo; gi < hi; gi++) {
            int64_t p0 = gi * GD_GROUP, g = GD_MIN((int64_t)GD_GROUP, npn - p0);
            GD_P(pack_b_panels)(x, p0 * GD_NR, g, pc, kc, bs + p0 * GD_NR * kc);
        }
        if (nth > 1) {
#pragma omp barrier
        }
        for (int64_t i0 = plo; i0 < phi; i0 += GD_MC / GD_MR) {
            const int64_t np = GD_MIN((int64_t)(GD_MC / GD_MR), phi - i0);
            GD_P(pack_a_panels)(x, i0 * GD_MR, np, pc, kc, ap);
            GD_P(panel_tiles)(x, i0 * GD_MR, np, ap, 0, npn, bs, pc, kc);
        }
    }
}

#undef GD_SPLIT

static void GD_P(run)(const GD_P(ctx) *x, int tid, int nth)
{
    switch (x->mode) {
    case TG_GEMM_MODE_COLUMNS: GD_P(run_columns)(x, tid, nth); break;
    case TG_GEMM_MODE_SLICES: GD_P(run_slices)(x, tid, nth); break;
    case TG_GEMM_MODE_ROWS: GD_P(run_rows)(x, tid, nth); break;
    }
}

/* Sizes x's buffers for its mode: sets priv_bytes (each thread's own) and, in rows mode,
 * the column block width nc; returns the bytes of the shared packed op(B). */
static size_t GD_P(plan_buffers)(GD_P(ctx) *x)
{
    switch (x->mode) {
    case TG_GEMM_MODE_SLICES:   /* two K slices of op(B) shared, MC rows of op(A) each */
        x->priv_bytes = GD_ROUNDUP((size_t)GD_MC * (size_t)x->kc * sizeof(GD_T));
        return 2 * GD_ROUNDUP((size_t)x->kc * (size_t)x->npn * GD_NR * sizeof(GD_T));
    case TG_GEMM_MODE_COLUMNS:  /* nothing shared: a group of B panels, op(A) panels */
        x->priv_bytes =
            GD_ROUNDUP((size_t)x->kc * GD_GROUP * GD_NR * sizeof(GD_T)) +
            GD_ROUNDUP((size_t)x->K * (size_t)(x->ta ? x->npm : 1) * GD_MR * sizeof(GD_T));
        return 0;
    case TG_GEMM_MODE_ROWS:
        break;
    }
    /* column blocks of (nearly) equal width within the budget: each block packs all of
     * op(A) again, so a narrow last block would cost nearly as much as a wide one */
    int64_t cap = (int64_t)(GD_B_BUDGET / ((size_t)x->K * sizeof(GD_T))) / GD_NR;
    cap = cap > 1 ? cap : 1;
    int64_t nblocks = (x->npn + cap - 1) / cap;
    x->nc = (x->npn + nblocks - 1) / nblocks * GD_NR;
    x->priv_bytes = GD_ROUNDUP((size_t)GD_MC * (size_t)x->kc * sizeof(GD_T));
    return GD_ROUNDUP((size_t)x->K * (size_t)x->nc * sizeof(GD_T));
}

const tg_gemm_tiling GD_TILING = {GD_MR, GD_NR, GD_KC, sizeof(GD_T)};

#ifdef GD_PACK_ENTRY
/* Packs op(B) (K x N) for the bpre argument into dst: every NR-wide panel, all K rows
 * deep, columns past N zero. Returns the elements that takes; dst NULL only asks. */
int64_t GD_PACK_ENTRY(bool tb, int64_t K, int64_t N, const GD_T *B, int64_t ldb, GD_T *dst)
{
    GD_P(ctx) x = { .tb = tb, .N = N, .K = K, .B = B, .ldb = ldb };
    for (int64_t j = 0; dst && j < N; j += GD_NR)
        GD_P(pack_b)(&x, j, 0, K, dst + j * K);
    return (N + GD_NR - 1) / GD_NR * GD_NR * K;
}
#endif

bool GD_ENTRY(bool ta, bool tb, int64_t M, int64_t N, int64_t K, GD_T alpha,
              const GD_T *A, int64_t lda, const GD_T *B, int64_t ldb,
              const GD_T *const *arows, const GD_T *const *brows, const GD_T *bpre,
              GD_T beta, GD_T *C, int64_t ldc)
{
    GD_P(ctx) x = {
        .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .arows = arows, .brows = brows, .C = C, .lda = lda, .ldb = ldb,
        .ldc = ldc,
    };
    /* K slices of (nearly) equal depth <= KC: the split depends on K alone, and so does
     * the order in which each element of C is summed. */
    x.nks = (K + GD_KC - 1) / GD_KC;
    x.kc = (K + x.nks - 1) / x.nks;
    x.npm = (M + GD_MR - 1) / GD_MR;
    x.npn = (N + GD_NR - 1) / GD_NR;

    const double fmas = (double)M * (double)N * (double)K;
    int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
    const bool may_thread = nth > 1 && fmas >= (double)TG_GEMM_PAR_MIN_FMAS;
    if (!may_thread || !tg_gemm_threads_ok())
        nth = 1;

    x.mode = tg_gemm_choose_mode(&GD_TILING, M, N, K, nth);
    x.bpre = x.mode == TG_GEMM_MODE_COLUMNS ? bpre : NULL;   /* the others pack their own */
    const size_t shared = GD_P(plan_buffers)(&x);
    char *buf = tg_gemm_scratch(shared + (size_t)nth * x.priv_bytes);
    if (!buf)
        return false;
    x.bp = (GD_T *)(void *)buf;
    x.priv = buf + shared;

    _Atomic int64_t next_panel = 0;
    x.next_panel = &next_panel;
    double t0 = may_thread ? omp_get_wtime() : 0;   /* the guard times both ways */
    if (nth == 1) {
        GD_P(run)(&x, 0, 1);
    } else {
#pragma omp parallel num_threads(nth)
        {
            int t = omp_get_thread_num(), n = omp_get_num_threads();
            GD_P(run)(&x, t, n);
        }
    }
    if (may_thread)
        tg_gemm_took(nth > 1, omp_get_wtime() - t0, fmas);
    return true;
}

#undef GD_MIN
#undef GD_ALIGN
#undef GD_ROUNDUP
#undef GD_B_BUDGET
#undef GD_GROUP
#undef GD_PREFETCH_ROWS
/* the instantiation's parameters */
#undef GD_T
#undef GD_ENTRY
#undef GD_TILING
#undef GD_P
#undef GD_MR
#undef GD_NR
#undef GD_MC
#undef GD_KC
#undef GD_KERNEL
#undef GD_PACK_A_ROWS
#undef GD_PACK_B_COLS
#undef GD_EDGE_KERNEL
#undef GD_PACK_ENTRY
