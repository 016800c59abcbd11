// Fused optimizer updates: one pass over each parameter, in place, in C++
// (no Python loop over elements, no temporaries). The parameter's version
// counter is bumped like any in-place update.
#pragma once

#include "tapegrad/autograd.hpp"

namespace tg::optim {

// p -= lr * d, where d = g + wd p, and with momentum: buf = mu buf + d;
// d = nesterov ? d + mu buf : buf. grad_scale != 1: g is first scaled in
// place (g *= grad_scale, written back), in the same pass (optim.cpp).
void sgd_step(VariableImpl& p, const Tensor& grad, Tensor* buf, double lr, double momentum, bool nesterov,
              double weight_decay, double grad_scale = 1.0);

// Adam (decoupled=false: wd added to the gradient) and AdamW (decoupled=true:
// p -= lr wd p). `step` counts from 1 (bias correction).
void adam_step(VariableImpl& p, const Tensor& grad, const Tensor& m, const Tensor& v, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled,
               double grad_scale = 1.0);

}  // namespace tg::optim
