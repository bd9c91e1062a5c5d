/* tensor/tensor.c: caller-owned tensors, element access, printing and the status strings. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tensor/tensor_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const char *tg_status_str(tg_status s)
{
    switch (s) {
    case TG_OK:            return "ok";
    case TG_ERR_NOMEM:     return "out of memory";
    case TG_ERR_SHAPE:     return "shape mismatch";
    case TG_ERR_DTYPE:     return "dtype mismatch";
    case TG_ERR_NULL:      return "NULL argument";
    case TG_ERR_ARG:       return "invalid argument";
    case TG_ERR_IO:        return "I/O error";
    case TG_ERR_FORMAT:    return "bad file format";
    case TG_ERR_NONFINITE: return "non-finite value";
    }
    return "unknown status";
}

size_t tg_dtype_size(tg_dtype dtype)
{
    return dtype == TG_F64 ? sizeof(double) : sizeof(float);
}

bool tg_mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return true;
    *out = a * b;
    return false;
}

tg_status tg_shape_check(tg_dtype dtype, int ndim, const int64_t *shape, int64_t *numel,
                         size_t *bytes)
{
    if (!shape)
        return TG_ERR_NULL;
    if ((dtype != TG_F32 && dtype != TG_F64) || ndim < 1 || ndim > TG_MAX_DIMS)
        return TG_ERR_ARG;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1)
            return TG_ERR_SHAPE;
        if ((uint64_t)shape[d] > (uint64_t)INT64_MAX || tg_mul_overflows(n, (size_t)shape[d], &n)
            || n > (size_t)INT64_MAX)
            return TG_ERR_NOMEM;
    }
    size_t b;
    if (tg_mul_overflows(n, tg_dtype_size(dtype), &b) || b > ((size_t)1 << 48))
        return TG_ERR_NOMEM;
    *numel = (int64_t)n;
    *bytes = b;
    return TG_OK;
}

void tg_tensor_set_shape(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                         int64_t numel)
{
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < TG_MAX_DIMS; d++)
        t->shape[d] = d < ndim ? shape[d] : 1;
    t->numel = numel;
}

/* Says why tg_shape_check refused (dtype, ndim, shape) on behalf of who. */
static void shape_error(const char *who, tg_status st, tg_dtype dtype, int ndim,
                        const int64_t *shape)
{
    if (!shape)
        tg_error_set(st, "%s: shape is NULL", who);
    else if (dtype != TG_F32 && dtype != TG_F64)
        tg_error_set(st, "%s: unknown dtype %d", who, (int)dtype);
    else if (ndim < 1 || ndim > TG_MAX_DIMS)
        tg_error_set(st, "%s: %d dims (must be 1..%d)", who, ndim, TG_MAX_DIMS);
    else if (st == TG_ERR_SHAPE)
        tg_error_set(st, "%s: every dim must be >= 1", who);
    else
        tg_error_set(st, "%s: %d-dim shape too large", who, ndim);
}

/* bytes of zeros on a cache line's boundary, so that every row of a weight whose row
   length is a multiple of 16 floats starts one too (the GEMM reading B in place loads
   a third fewer lines per row than from calloc's 16-byte alignment); free() frees it.
   NULL when out of memory or the size overflows. */
static void *zeroed_lines(size_t bytes)
{
    enum { LINE = 64 };
    if (bytes > SIZE_MAX - LINE)
        return NULL;
    void *p = aligned_alloc(LINE, bytes ? (bytes + LINE - 1) / LINE * LINE : LINE);
    return p ? memset(p, 0, bytes) : NULL;
}

tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel;
    size_t bytes;
    tg_status st = tg_shape_check(dtype, ndim, shape, &numel, &bytes);
    if (st != TG_OK) {
        shape_error("tensor_new", st, dtype, ndim, shape);
        return NULL;
    }
    tg_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        tg_error_set(TG_ERR_NOMEM, "tensor_new: out of memory");
        return NULL;
    }
    t->data = zeroed_lines(bytes);
    if (!t->data) {
        free(t);
        tg_error_set(TG_ERR_NOMEM, "tensor_new: out of memory for %zu bytes", bytes);
        return NULL;
    }
    tg_tensor_set_shape(t, dtype, ndim, shape, numel);
    return t;
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || (t->flags & TG_FLAG_TAPE))
        return;
    if (!(t->flags & TG_FLAG_VIEW))
        free(t->data);
    free(t->grad);
    free(t);
}

tg_status tg_tensor_requires_grad(tg_tensor *t)
{
    if (!t)
        return tg_error_set(TG_ERR_NULL, "tensor_requires_grad: tensor is NULL");
    if (!t->grad) {
        if (t->flags & TG_FLAG_TAPE)    /* tape tensors get their gradients from backward */
            return tg_error_set(TG_ERR_ARG, "tensor_requires_grad: %s is owned by a tape "
                                "(only caller-owned tensors take a gradient buffer)",
                                tg_shape_str(t, (char[64]){ 0 }, 64));
        t->grad = zeroed_lines((size_t)t->numel * tg_dtype_size(t->dtype));
        if (!t->grad)
            return tg_error_set(TG_ERR_NOMEM, "tensor_requires_grad: out of memory for a "
                                "gradient of %lld elements", (long long)t->numel);
    }
    t->flags |= TG_FLAG_REQUIRES_GRAD;
    return TG_OK;
}

void tg_tensor_zero_grad(tg_tensor *t)
{
    if (t && t->grad)
        memset(t->grad, 0, (size_t)t->numel * tg_dtype_size(t->dtype));
}

static double load(const void *p, tg_dtype dtype, int64_t i)
{
    return dtype == TG_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

double tg_tensor_get(const tg_tensor *t, int64_t i)
{
    return load(t->data, t->dtype, i);
}

void tg_tensor_set(tg_tensor *t, int64_t i, double v)
{
    if (t->dtype == TG_F64)
        ((double *)t->data)[i] = v;
    else
        ((float *)t->data)[i] = (float)v;
}

double tg_tensor_grad_get(const tg_tensor *t, int64_t i)
{
    return t->grad ? load(t->grad, t->dtype, i) : 0.0;
}

tg_status tg_tensor_fill_values(tg_tensor *t, const double *values)
{
    if (!t || !values)
        return tg_error_set(TG_ERR_NULL, "tensor_fill_values: %s is NULL",
                            !t ? "tensor" : "values");
    for (int64_t i = 0; i < t->numel; i++)
        tg_tensor_set(t, i, values[i]);
    return TG_OK;
}

void tg_tensor_fill(tg_tensor *t, double v)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->numel; i++)
        tg_tensor_set(t, i, v);
}

tg_status tg_tensor_copy(tg_tensor *dst, const tg_tensor *src)
{
    if (!dst || !src)
        return tg_error_set(TG_ERR_NULL, "tensor_copy: %s is NULL", !dst ? "dst" : "src");
    if (dst->dtype != src->dtype)
        return tg_error_set(TG_ERR_DTYPE, "tensor_copy: dst is %s but src is %s",
                            dst->dtype == TG_F64 ? "f64" : "f32",
                            src->dtype == TG_F64 ? "f64" : "f32");
    if (dst->numel != src->numel) {
        char ds[64], ss[64];
        return tg_error_set(TG_ERR_SHAPE, "tensor_copy: dst %s and src %s differ in size",
                            tg_shape_str(dst, ds, sizeof ds), tg_shape_str(src, ss, sizeof ss));
    }
    if (dst->data != src->data)
        memcpy(dst->data, src->data, (size_t)src->numel * tg_dtype_size(src->dtype));
    return TG_OK;
}

tg_tensor *tg_tensor_clone(const tg_tensor *t)
{
    if (!t) {
        tg_error_set(TG_ERR_NULL, "tensor_clone: tensor is NULL");
        return NULL;
    }
    tg_tensor *c = tg_tensor_new(t->dtype, t->ndim, t->shape);   /* sets the reason */
    if (c)
        tg_tensor_copy(c, t);
    return c;
}

bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

char *tg_shape_str(const tg_tensor *t, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    if (!t) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < t->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, d ? ",%lld" : "%lld",
                                (long long)t->shape[d]);
    if (len < size)
        snprintf(buf + len, size - len, ")");
    return buf;
}

/* ---- printing ------------------------------------------------------------
 * Nested brackets by dimension; at most EDGE items from each end of a long dimension.
 */
enum { EDGE = 3, FULL_LIMIT = 8 };

static void print_block(FILE *f, const tg_tensor *t, int dim, int64_t offset, int indent)
{
    int64_t n = t->shape[dim], stride = 1;
    for (int d = dim + 1; d < t->ndim; d++)
        stride *= t->shape[d];
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (n > FULL_LIMIT && i == EDGE) {
            fprintf(f, dim == t->ndim - 1 ? " ..." : "...\n%*s", indent + 1, "");
            i = n - EDGE;
        }
        if (dim == t->ndim - 1) {
            fprintf(f, i ? " %10.4g" : "%10.4g", load(t->data, t->dtype, offset + i));
        } else {
            if (i)
                fprintf(f, "\n%*s", indent + 1, "");
            print_block(f, t, dim + 1, offset + i * stride, indent + 1);
        }
    }
    fputc(']', f);
}

void tg_tensor_print(FILE *f, const char *name, const tg_tensor *t)
{
    if (!f)
        return;
    char shape[64];
    if (!t) {
        fprintf(f, "%s: NULL\n", name ? name : "tensor");
        return;
    }
    fprintf(f, "%s: %s %s%s\n", name ? name : "tensor", t->dtype == TG_F64 ? "f64" : "f32",
            tg_shape_str(t, shape, sizeof shape), t->grad ? " (grad)" : "");
    print_block(f, t, 0, 0, 0);
    fputc('\n', f);
}

/* ---- threads ---------------------------------------------------------------- */
void tg_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n >= 1)
        omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int tg_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
