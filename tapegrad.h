/* tapegrad.h: the umbrella header; includes every public module header. */
#ifndef TG_TAPEGRAD_H
#define TG_TAPEGRAD_H

#include "tensor/tensor.h"
#include "tensor/gemm.h"
#include "autograd/autograd.h"
#include "autograd/params.h"
#include "autograd/gradcheck.h"
#include "nn/nn.h"
#include "nn/text.h"
#include "optim/optim.h"
#include "optim/checkpoint.h"

#endif /* TG_TAPEGRAD_H */
