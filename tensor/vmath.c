/* tensor/vmath.c: exp, sigmoid and tanh over float arrays, eight lanes at a time. */
#include <string.h>

#include "tensor/tensor_internal.h"
#include "tensor/vmath_internal.h"

/*
 * libm's expf/tanhf are scalar calls; in a char-LM step they cost as much as the GEMMs.
 * These use GCC/clang vector extensions (8 x float; the compiler maps them to AVX2 or
 * SSE2 pairs) and are cloned for AVX2+FMA and baseline x86-64, picked at load time.
 *
 * exp:  e^x = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 in [-ln2/2, ln2/2],
 *       e^r by its Taylor series to r^7 (truncation below 1e-8 relative); x is clamped to
 *       [-104, 88]. Below 2^-126 (x < about -87.3) the result is a subnormal float, made as
 *       (e^r 2^(n+64)) 2^-64 so it is rounded once; below half the smallest subnormal
 *       (x < about -103.97, -inf included) it underflows to 0, as libm's. Within 2 ulp of
 *       libm (tests/test_ops_pointwise.c).
 * sigmoid(x) = 1 / (1 + e^-x)
 * tanh(x) = x (1 - x^2/3 + 2x^4/15 - 17x^6/315 + 62x^8/2835)     for |x| < 1/4
 *         = sign(x) (1 - 2 / (e^2|x| + 1))                       otherwise
 */
/* The helpers below pass 32-byte vectors by value; they are static and always inlined, so
   the ABI note GCC gives for builds without AVX does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float   v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define SPLAT(c) ((v8f){ (c), (c), (c), (c), (c), (c), (c), (c) })

/* mask ? a : b, lane by lane (mask lanes are all ones or all zeros) */
static inline v8f vselect(v8i mask, v8f a, v8f b)
{
    return (v8f)((mask & (v8i)a) | (~mask & (v8i)b));
}

static inline v8f vexp(v8f x)
{
    v8i underflow = x < SPLAT(-104.0f);
    x = vselect(underflow, SPLAT(-104.0f), x);
    x = vselect(x > SPLAT(88.0f), SPLAT(88.0f), x);
    const v8f shifter = SPLAT(12582912.0f);          /* 1.5 * 2^23: adding it rounds */
    v8f n = (x * SPLAT(1.44269504088896341f) + shifter) - shifter;
    v8f r = x - n * SPLAT(0.693145751953125f);       /* ln 2 in two parts */
    r = r - n * SPLAT(1.428606765330187e-06f);
    v8f p = SPLAT(1.0f / 5040);
    p = p * r + SPLAT(1.0f / 720);
    p = p * r + SPLAT(1.0f / 120);
    p = p * r + SPLAT(1.0f / 24);
    p = p * r + SPLAT(1.0f / 6);
    p = p * r + SPLAT(0.5f);
    p = p * r + SPLAT(1.0f);
    p = p * r + SPLAT(1.0f);
    v8i ni = __builtin_convertvector(n, v8i);
    v8i subnormal = ni < -126;                       /* 2^n is not a normal float */
    v8i bits = (ni + 127 + (subnormal & 64)) << 23;  /* 2^n, or 2^(n+64) */
    v8f y = p * (v8f)bits;
    y = y * vselect(subnormal, SPLAT(0x1p-64f), SPLAT(1.0f));
    return vselect(underflow, SPLAT(0.0f), y);
}

static inline v8f vsigmoid(v8f x)
{
    return SPLAT(1.0f) / (SPLAT(1.0f) + vexp(-x));
}

static inline v8f vtanh(v8f x)
{
    v8i sign = (v8i)x & (v8i)SPLAT(-0.0f);
    v8f a = (v8f)((v8i)x & ~(v8i)SPLAT(-0.0f));     /* |x| */
    v8f x2 = x * x;
    v8f small = x * (SPLAT(1.0f) + x2 * (SPLAT(-1.0f / 3) + x2 * (SPLAT(2.0f / 15)
                + x2 * (SPLAT(-17.0f / 315) + x2 * SPLAT(62.0f / 2835)))));
    v8f big = SPLAT(1.0f) - SPLAT(2.0f) / (vexp(SPLAT(2.0f) * a) + SPLAT(1.0f));
    big = (v8f)((v8i)big | sign);
    return vselect(a < SPLAT(0.25f), small, big);
}

/* Applies f to n floats: whole vectors, then the tail through a padded vector. */
#define ARRAY_FN(name, f)                                                          \
    TG_CLONES void name(const float *x, float *y, int64_t n)                       \
    {                                                                              \
        int64_t i = 0;                                                             \
        for (; i + 8 <= n; i += 8) {                                               \
            v8f v;                                                                 \
            memcpy(&v, x + i, sizeof v);                                           \
            v = f(v);                                                              \
            memcpy(y + i, &v, sizeof v);                                           \
        }                                                                          \
        if (i < n) {                                                               \
            v8f v = SPLAT(0.0f);                                                   \
            memcpy(&v, x + i, (size_t)(n - i) * sizeof(float));                    \
            v = f(v);                                                              \
            memcpy(y + i, &v, (size_t)(n - i) * sizeof(float));                    \
        }                                                                          \
    }

ARRAY_FN(tg_vexpf, vexp)
ARRAY_FN(tg_vsigmoidf, vsigmoid)
ARRAY_FN(tg_vtanhf, vtanh)
