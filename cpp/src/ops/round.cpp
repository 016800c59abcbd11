// ----- h100-small: round(x, decimals) as one primitive: kern::round_decimals (simd/round.cpp, NumPy's bits in
// one pass) and a zero derivative; decimals 0 is rint itself (the spec primitive: the same bits).
#include "ops/common.hpp"

namespace tg {

namespace {
// Piecewise constant, as rint (TG_ZERO_UNARY_RULE): zeros of the direction's shape (not d * 0: NaN where d is
// inf); recorded, where(false, d, 0), so the gradient stays a Variable on d's graph.
struct RoundDecimalsRule {
  static constexpr const char* name = "round";
  static constexpr bool pointwise = true;
  struct Attrs {};
  static Var zeros_of(const Var& d) {
    if (grad_enabled()) return where(Tensor::zeros(d->shape(), DType::Bool), d, scalar(0, d));
    return constant(Tensor::zeros(d->shape(), d->dtype()));
  }
  static Grads vjp(OpNode<RoundDecimalsRule>&, const Var& g) { return Grads::of(zeros_of(g)); }
  static Var jvp(OpNode<RoundDecimalsRule>&, const Grads& t, int) { return zeros_of(t[0]); }
};
}  // namespace

Var round_decimals(const Var& x, int64_t decimals) {
  if (decimals == 0) return rint(x);
  Recorder<RoundDecimalsRule> r(kern::round_decimals(x->data, decimals), {&x});
  return std::move(r.out);
}

}  // namespace tg
