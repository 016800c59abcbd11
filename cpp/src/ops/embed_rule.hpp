// The rule of an op whose result is its input written at `ix` of a new array (basic_index_embed, getitem's
// backward, in zeros; pad, in a constant): linear in the input, so its VJP is the strided view of g at ix and
// its JVP the tangent embedded in zeros. Name: a struct with `static constexpr const char* name`.
#pragma once

#include "ops/common.hpp"

namespace tg {

template <class Name>
struct EmbedRule {
  static constexpr const char* name = Name::name;
  struct Attrs { BasicIndex ix; };
  static Grads vjp(OpNode<EmbedRule>& n, const Var& g) {
    return {basic_index(g, n.attrs.ix.with_batch(batch_shape(g, n.batch_dims(g))))};
  }
  static Var jvp(OpNode<EmbedRule>& n, const Grads& t, int nb) {
    return basic_index_embed(t[0], n.attrs.ix.with_batch(batch_shape(t[0], nb)), with_batch(t[0], nb, n.out_shape));
  }
};

}  // namespace tg
