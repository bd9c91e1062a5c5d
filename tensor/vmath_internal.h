/* tensor/vmath_internal.h: vectorised exp, sigmoid and tanh over float arrays. */
#ifndef TG_TENSOR_VMATH_INTERNAL_H
#define TG_TENSOR_VMATH_INTERNAL_H

#include <stdint.h>

/* y[i] = f(x[i]) for i < n (x == y allowed). Accuracy: exp within 2 ulp of libm, sigmoid
   and tanh within 4e-7 relative (1e-9 absolute near 0); NaN in gives NaN out. */
void tg_vexpf(const float *x, float *y, int64_t n);
void tg_vsigmoidf(const float *x, float *y, int64_t n);
void tg_vtanhf(const float *x, float *y, int64_t n);

#endif /* TG_TENSOR_VMATH_INTERNAL_H */
