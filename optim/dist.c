/* optim/dist.c: data-parallel helpers over MPI (compiled in only with MPI=1): fixed-order
   gradient averaging, parameter broadcast and agreement checks, fixed-order sums. */
#ifdef TG_WITH_MPI

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/dist.h"
#include "tensor/tensor_internal.h"   /* tg_crc32, tg_error_set */

enum { PAR_MIN = 1 << 15 };   /* elements below which the summing loop stays serial */

/* TG_ERR_IO with MPI's own words for code (only seen under MPI_ERRORS_RETURN). */
static tg_status mpi_fail(int code, const char *who, const char *call)
{
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", code);
    return tg_error_set(TG_ERR_IO, "%s: %s failed: %s", who, call, msg);
}

/* One collective call: its name in messages, the communicator, its size and this rank. */
typedef struct dist_call {
    const char *who;
    MPI_Comm comm;
    int size, rank;
} dist_call;

/* ---- the agreed header ---------------------------------------------------------------
 * Before moving data every rank sends a few doubles (exact for the integers involved) and
 * receives everyone's, so all ranks reach the same verdict from the same numbers. H_CODE
 * carries a rank's local failure (a NULL argument, a failed allocation) to the others.
 */
enum { H_CODE, H_COUNT, H_NUMEL, H_DTYPE, H_LAYOUT, H_X, H_NVAL, H_VALS,
       H_LEN = H_VALS + TG_DIST_MAX_VALUES };

/* Up to SMALL_RANKS ranks the headers live on the stack and one MPI_Allgather is the whole
   exchange; beyond, they are malloc'ed and the ranks first agree that all allocations
   worked (one more collective). */
#ifndef TG_DIST_SMALL_RANKS
#define TG_DIST_SMALL_RANKS 64   /* tests build with 1 to take the other path */
#endif
enum { SMALL_RANKS = TG_DIST_SMALL_RANKS };
typedef struct headers {
    double *all;                           /* size * H_LEN: rank r's header at r * H_LEN */
    double small[SMALL_RANKS * H_LEN];
} headers;

static void headers_release(headers *h)
{
    if (h->all != h->small)
        free(h->all);
    h->all = NULL;
}

/* CRC of the parameters' names, shapes and gradient presence (the layout every rank must
   share), and the number of gradient elements. */
static uint32_t layout_crc(tg_params *ps, int64_t *grad_numel)
{
    uint32_t crc = 0;
    int64_t total = 0;
    int np = tg_params_count(ps);
    for (int i = 0; i < np; i++) {
        const char *name = tg_params_name(ps, i);
        tg_tensor *t = tg_params_at(ps, i);
        int32_t desc[2 + TG_MAX_DIMS] = {t->ndim, t->grad != NULL};
        for (int d = 0; d < t->ndim; d++)
            desc[2 + d] = (int32_t)t->shape[d];
        crc = tg_crc32(crc, name, strlen(name) + 1);
        crc = tg_crc32(crc, desc, sizeof desc);
        if (t->grad)
            total += t->numel;
    }
    *grad_numel = total;
    return crc;
}

/* The values every rank sent must be as many everywhere (and allowed). */
static tg_status check_nval(const double *all, const dist_call *c, int nval, int max)
{
    for (int r = 0; r < c->size; r++) {
        double theirs = all[r * H_LEN + H_NVAL];
        if (theirs != nval || nval < 0 || nval > max) {
            return tg_error_set(TG_ERR_ARG, "%s: rank %d has n = %g, rank 0 has %g (must be "
                                "equal, 0 .. %d)", c->who, r, theirs, all[H_NVAL], max);
        }
    }
    return TG_OK;
}

/* values[i] = sum over ranks, in rank order, of the values in the headers. */
static void sum_header_values(const double *all, int size, double *values, int nval)
{
    for (int i = 0; i < nval; i++) {
        double acc = 0.0;
        for (int r = 0; r < size; r++)
            acc += all[r * H_LEN + H_VALS + i];
        values[i] = acc;
    }
}

/* The common verdict on the headers: a local failure anywhere, then (when layout) a
   parameter layout that differs from rank 0's. */
static tg_status check_headers(const double *all, const dist_call *c, bool layout)
{
    for (int r = 0; r < c->size; r++) {
        tg_status code = (tg_status)all[r * H_LEN + H_CODE];
        if (code != TG_OK) {
            return tg_error_set(code, "%s: rank %d: %s", c->who, r,
                                code == TG_ERR_NULL ? "NULL argument"
                                : code == TG_ERR_NOMEM ? "out of memory" : tg_status_str(code));
        }
    }
    for (int r = 1; layout && r < c->size; r++) {
        const double *a = all, *b = all + r * H_LEN;
        if (a[H_COUNT] != b[H_COUNT] || a[H_NUMEL] != b[H_NUMEL] || a[H_DTYPE] != b[H_DTYPE] ||
            a[H_LAYOUT] != b[H_LAYOUT]) {
            return tg_error_set(TG_ERR_SHAPE, "%s: rank %d's parameters (%.0f tensors, %.0f "
                                "elements, %s) differ from rank 0's (%.0f tensors, %.0f "
                                "elements, %s)%s", c->who, r,
                                b[H_COUNT], b[H_NUMEL], b[H_DTYPE] == TG_F64 ? "f64" : "f32",
                                a[H_COUNT], a[H_NUMEL], a[H_DTYPE] == TG_F64 ? "f64" : "f32",
                                a[H_COUNT] == b[H_COUNT] && a[H_NUMEL] == b[H_NUMEL] &&
                                a[H_DTYPE] == b[H_DTYPE] ? " in names or shapes" : "");
        }
    }
    return TG_OK;
}

/* Exchanges headers (ps: the parameters whose layout every rank must share, or NULL for
   none; code: this rank's status so far; x: a per-call value; vals: nval values to sum, of
   which the first TG_DIST_MAX_VALUES travel) and reaches the common verdict on them
   (check_headers). On TG_OK, h->all holds every rank's header (release with
   headers_release); on failure nothing is held. Fails the same way on every rank
   (TG_ERR_NOMEM when any rank could not hold the headers) except for MPI errors. */
static tg_status exchange_headers(const dist_call *c, tg_params *ps, tg_status code, double x,
                                  const double *vals, int nval, headers *h)
{
    double mine[H_LEN] = {0};
    mine[H_CODE] = code;
    mine[H_X] = x;
    mine[H_NVAL] = nval;
    for (int i = 0; vals && i < nval && i < TG_DIST_MAX_VALUES; i++)
        mine[H_VALS + i] = vals[i];
    if (ps) {
        int64_t numel = 0;
        mine[H_LAYOUT] = (double)layout_crc(ps, &numel);
        mine[H_COUNT] = tg_params_count(ps);
        mine[H_NUMEL] = (double)numel;
        mine[H_DTYPE] = tg_params_dtype(ps);
    }
    int rc, local_ok = 1, all_ok = 1;
    if (c->size <= SMALL_RANKS) {
        h->all = h->small;
    } else {
        h->all = malloc((size_t)c->size * H_LEN * sizeof *h->all);
        local_ok = h->all != NULL;
        rc = MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_MIN, c->comm);
        if (rc != MPI_SUCCESS) {
            headers_release(h);
            return mpi_fail(rc, c->who, "MPI_Allreduce");
        }
    }
    if (!all_ok) {
        headers_release(h);
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory on %s", c->who,
                            local_ok ? "another rank" : "this rank");
    }
    rc = MPI_Allgather(mine, H_LEN, MPI_DOUBLE, h->all, H_LEN, MPI_DOUBLE, c->comm);
    if (rc != MPI_SUCCESS) {
        headers_release(h);
        return mpi_fail(rc, c->who, "MPI_Allgather");
    }
    tg_status st = check_headers(h->all, c, ps != NULL);
    if (st != TG_OK)
        headers_release(h);
    return st;
}

/* Starts the call who on comm: fills *c, refusing intercommunicators (their collectives
   mean another thing). */
static tg_status call_begin(dist_call *c, MPI_Comm comm, const char *who)
{
    int inter = 0, rc;
    *c = (dist_call){who, comm, 0, 0};
    if (comm == MPI_COMM_NULL)
        return tg_error_set(TG_ERR_ARG, "%s: the communicator is MPI_COMM_NULL", who);
    if ((rc = MPI_Comm_test_inter(comm, &inter)) != MPI_SUCCESS)
        return mpi_fail(rc, who, "MPI_Comm_test_inter");
    if (inter)
        return tg_error_set(TG_ERR_ARG, "%s: an intercommunicator is not supported", who);
    if ((rc = MPI_Comm_size(comm, &c->size)) != MPI_SUCCESS)
        return mpi_fail(rc, who, "MPI_Comm_size");
    if ((rc = MPI_Comm_rank(comm, &c->rank)) != MPI_SUCCESS)
        return mpi_fail(rc, who, "MPI_Comm_rank");
    return TG_OK;
}

/* ---- packing ---------------------------------------------------------------------------- */
/* Copies every gradient (grads) or value (!grads) into buf (PACK) or back from it
   (UNPACK), in parameter order: one loop, so both directions agree on the layout. */
typedef enum { PACK, UNPACK } copy_dir;

static void copy_flat(tg_params *ps, bool grads, unsigned char *buf, copy_dir dir)
{
    size_t esz = tg_dtype_size(tg_params_dtype(ps));
    int np = tg_params_count(ps);
    for (int i = 0; i < np; i++) {
        tg_tensor *t = tg_params_at(ps, i);
        if (grads && !t->grad)
            continue;
        void *mine = grads ? t->grad : t->data;
        size_t bytes = (size_t)t->numel * esz;
        if (dir == PACK)
            memcpy(buf, mine, bytes);
        else
            memcpy(mine, buf, bytes);
        buf += bytes;
    }
}

/* Slice r of n elements split over size ranks: the first n % size slices get one more. */
static int64_t slice_start(int64_t n, int size, int r)
{
    int64_t q = n / size, m = n % size;
    return q * r + (r < m ? r : m);
}

/* ---- gradient averaging ------------------------------------------------------------------
 * Each rank owns a slice of the flat gradient. Alltoallv brings it every rank's copy of
 * its slice: recv holds size blocks of len elements, block r from rank r. The owner adds
 * weight_r * block_r for r = 0, 1, ... in double and rounds once; Allgatherv hands every
 * rank every summed slice. The same code sums every slice, so where an element lands
 * changes nothing: its value is fixed by the weights and gradients alone.
 */
static void sum_slice_f32(const float *recv, int size, int64_t len, const double *w,
                          float *out)
{
    #pragma omp parallel for schedule(static) if (len > PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        double acc = 0.0;
        for (int r = 0; r < size; r++)
            acc += w[r] * (double)recv[(int64_t)r * len + i];
        out[i] = (float)acc;
    }
}

static void sum_slice_f64(const double *recv, int size, int64_t len, const double *w,
                          double *out)
{
    #pragma omp parallel for schedule(static) if (len > PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        double acc = 0.0;
        for (int r = 0; r < size; r++)
            acc += w[r] * recv[(int64_t)r * len + i];
        out[i] = acc;
    }
}

static tg_status average_grads_sum(tg_params *ps, MPI_Comm comm, double weight,
                                   double *values, int n_values)
{
    dist_call c;
    tg_status st = call_begin(&c, comm, "dist_average_grads");
    if (st != TG_OK)
        return st;

    /* buffers from the local layout (a mismatch is refused below before they are used) */
    int64_t n = 0;
    (void)layout_crc(ps, &n);
    tg_dtype dt = tg_params_dtype(ps);
    size_t esz = tg_dtype_size(dt);
    int64_t my0 = slice_start(n, c.size, c.rank);
    int64_t len = slice_start(n, c.size, c.rank + 1) - my0;
    unsigned char *flat = NULL, *recv = NULL, *out = NULL;
    int *counts = NULL, *displs = NULL, *rcounts = NULL, *rdispls = NULL;
    double *w = NULL;
    tg_status local = ps && (values || n_values <= 0) ? TG_OK : TG_ERR_NULL;
    if (local == TG_OK && n <= (int64_t)INT_MAX) {
        flat = malloc((size_t)(n > 0 ? n : 1) * esz);
        recv = malloc((size_t)(len > 0 ? len : 1) * (size_t)c.size * esz);
        out = malloc((size_t)(len > 0 ? len : 1) * esz);
        counts = malloc((size_t)c.size * sizeof *counts);
        displs = malloc((size_t)c.size * sizeof *displs);
        rcounts = malloc((size_t)c.size * sizeof *rcounts);
        rdispls = malloc((size_t)c.size * sizeof *rdispls);
        w = malloc((size_t)c.size * sizeof *w);
        if (!flat || !recv || !out || !counts || !displs || !rcounts || !rdispls || !w)
            local = TG_ERR_NOMEM;
    }

    headers h;
    st = exchange_headers(&c, ps, local, weight, values, n_values, &h);
    if (st != TG_OK)
        goto done;
    const double *hdr = h.all;
    st = check_nval(hdr, &c, n_values, TG_DIST_MAX_VALUES);
    if (st == TG_OK && n > (int64_t)INT_MAX) {
        /* counts and displacements are ints (the same n everywhere: all stop here) */
        st = tg_error_set(TG_ERR_ARG, "%s: %lld gradient elements exceed MPI's int "
                          "displacements", c.who, (long long)n);
    }
    for (int r = 0; st == TG_OK && r < c.size; r++) {
        w[r] = hdr[r * H_LEN + H_X];
        if (!isfinite(w[r]))
            st = tg_error_set(TG_ERR_ARG, "%s: rank %d's weight is %g (must be finite)",
                              c.who, r, w[r]);
    }
    double sums[TG_DIST_MAX_VALUES];
    if (st == TG_OK)
        sum_header_values(hdr, c.size, sums, n_values);
    headers_release(&h);
    if (st != TG_OK)
        goto done;

    for (int r = 0; r < c.size; r++) {
        int64_t s0 = slice_start(n, c.size, r), s1 = slice_start(n, c.size, r + 1);
        counts[r] = (int)(s1 - s0);
        displs[r] = (int)s0;
        rcounts[r] = (int)len;
        rdispls[r] = (int)((int64_t)r * len);   /* <= n: fits */
    }
    MPI_Datatype mt = dt == TG_F64 ? MPI_DOUBLE : MPI_FLOAT;
    copy_flat(ps, true, flat, PACK);
    int rc = MPI_Alltoallv(flat, counts, displs, mt, recv, rcounts, rdispls, mt, comm);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(rc, c.who, "MPI_Alltoallv");
        goto done;
    }
    if (dt == TG_F64)
        sum_slice_f64((const double *)recv, c.size, len, w, (double *)out);
    else
        sum_slice_f32((const float *)recv, c.size, len, w, (float *)out);
    rc = MPI_Allgatherv(out, (int)len, mt, flat, counts, displs, mt, comm);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(rc, c.who, "MPI_Allgatherv");
        goto done;
    }
    copy_flat(ps, true, flat, UNPACK);
    for (int i = 0; i < n_values; i++)
        values[i] = sums[i];
done:
    free(w);
    free(flat);
    free(recv);
    free(out);
    free(counts);
    free(displs);
    free(rcounts);
    free(rdispls);
    return st;
}

tg_status tg_dist_average_grads(tg_params *ps, MPI_Comm comm, double weight, char *err,
                                size_t errsize)
{
    return tg_error_copy(average_grads_sum(ps, comm, weight, NULL, 0), err, errsize);
}

tg_status tg_dist_average_grads_sum(tg_params *ps, MPI_Comm comm, double weight,
                                    double *values, int n, char *err, size_t errsize)
{
    return tg_error_copy(average_grads_sum(ps, comm, weight, values, n), err, errsize);
}

/* ---- parameters ---------------------------------------------------------------------- */
static int64_t values_bytes(tg_params *ps)
{
    size_t esz = tg_dtype_size(tg_params_dtype(ps));
    return tg_params_numel(ps) * (int64_t)esz;
}

static tg_status broadcast_params(tg_params *ps, MPI_Comm comm, int root)
{
    dist_call c;
    tg_status st = call_begin(&c, comm, "dist_broadcast_params");
    if (st != TG_OK)
        return st;
    int64_t bytes = ps ? values_bytes(ps) : 0;
    unsigned char *buf = ps ? malloc((size_t)(bytes > 0 ? bytes : 1)) : NULL;
    tg_status local = !ps ? TG_ERR_NULL : !buf ? TG_ERR_NOMEM : TG_OK;
    headers h;
    st = exchange_headers(&c, ps, local, root, NULL, 0, &h);
    if (st != TG_OK) {
        free(buf);
        return st;
    }
    const double *hdr = h.all;
    for (int r = 0; st == TG_OK && r < c.size; r++) {
        if (hdr[r * H_LEN + H_X] != hdr[H_X] || !(hdr[H_X] >= 0 && hdr[H_X] < c.size))
            st = tg_error_set(TG_ERR_ARG, "%s: bad root (rank %d says %g, rank 0 says %g, "
                              "%d ranks)", c.who, r, hdr[r * H_LEN + H_X], hdr[H_X], c.size);
    }
    headers_release(&h);
    if (st != TG_OK) {
        free(buf);
        return st;
    }
    if (c.rank == root)
        copy_flat(ps, false, buf, PACK);
    /* in pieces of at most 1 GiB: MPI counts are ints */
    for (int64_t off = 0; off < bytes;) {
        int64_t piece = bytes - off < (1 << 30) ? bytes - off : (1 << 30);
        int rc = MPI_Bcast(buf + off, (int)piece, MPI_BYTE, root, comm);
        if (rc != MPI_SUCCESS) {
            free(buf);
            return mpi_fail(rc, c.who, "MPI_Bcast");
        }
        off += piece;
    }
    if (c.rank != root)
        copy_flat(ps, false, buf, UNPACK);
    free(buf);
    return TG_OK;
}

tg_status tg_dist_broadcast_params(tg_params *ps, MPI_Comm comm, int root, char *err,
                                   size_t errsize)
{
    return tg_error_copy(broadcast_params(ps, comm, root), err, errsize);
}

static tg_status check_params(tg_params *ps, MPI_Comm comm)
{
    dist_call c;
    tg_status st = call_begin(&c, comm, "dist_check_params");
    if (st != TG_OK)
        return st;
    uint32_t crc = 0;
    int np = tg_params_count(ps);
    size_t esz = tg_dtype_size(tg_params_dtype(ps));
    for (int i = 0; i < np; i++) {
        tg_tensor *t = tg_params_at(ps, i);
        crc = tg_crc32(crc, t->data, (size_t)t->numel * esz);
    }
    headers h;
    st = exchange_headers(&c, ps, ps ? TG_OK : TG_ERR_NULL, crc, NULL, 0, &h);
    if (st != TG_OK)
        return st;
    const double *hdr = h.all;
    for (int r = 1; st == TG_OK && r < c.size; r++) {
        if (hdr[r * H_LEN + H_X] != hdr[H_X])
            st = tg_error_set(TG_ERR_ARG, "%s: rank %d's parameter values differ from rank "
                              "0's (CRC %08lx, rank 0: %08lx)", c.who, r,
                              (unsigned long)hdr[r * H_LEN + H_X], (unsigned long)hdr[H_X]);
    }
    headers_release(&h);
    return st;
}

tg_status tg_dist_check_params(tg_params *ps, MPI_Comm comm, char *err, size_t errsize)
{
    return tg_error_copy(check_params(ps, comm), err, errsize);
}

/* ---- scalars ------------------------------------------------------------------------------ */
static tg_status sum(double *values, int n, MPI_Comm comm)
{
    dist_call c;
    tg_status st = call_begin(&c, comm, "dist_sum");
    if (st != TG_OK)
        return st;
    /* up to TG_DIST_MAX_VALUES values ride in the header: one collective */
    tg_status local = !values && n > 0 ? TG_ERR_NULL : TG_OK;
    double *gathered = NULL;
    if (local == TG_OK && n > TG_DIST_MAX_VALUES && n <= INT_MAX / c.size) {
        gathered = malloc((size_t)n * (size_t)c.size * sizeof *gathered);
        if (!gathered)
            local = TG_ERR_NOMEM;
    }
    headers h;
    st = exchange_headers(&c, NULL, local, 0, values, n, &h);
    if (st != TG_OK) {
        free(gathered);
        return st;
    }
    st = check_nval(h.all, &c, n, INT_MAX / c.size);
    if (st == TG_OK && n <= TG_DIST_MAX_VALUES)
        sum_header_values(h.all, c.size, values, n);
    headers_release(&h);
    if (st != TG_OK || n <= TG_DIST_MAX_VALUES) {
        free(gathered);
        return st;
    }
    int rc = MPI_Allgather(values, n, MPI_DOUBLE, gathered, n, MPI_DOUBLE, comm);
    if (rc != MPI_SUCCESS) {
        free(gathered);
        return mpi_fail(rc, c.who, "MPI_Allgather");
    }
    for (int i = 0; i < n; i++) {
        double acc = 0.0;
        for (int r = 0; r < c.size; r++)
            acc += gathered[(size_t)r * (size_t)n + (size_t)i];
        values[i] = acc;
    }
    free(gathered);
    return TG_OK;
}

tg_status tg_dist_sum(double *values, int n, MPI_Comm comm, char *err, size_t errsize)
{
    return tg_error_copy(sum(values, n, comm), err, errsize);
}

#else
/* Built without MPI=1: nothing here (ISO C wants a declaration in every file). */
typedef int tg_dist_not_built;
#endif /* TG_WITH_MPI */
