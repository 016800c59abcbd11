// ----- h123-lastaxis: the softmax family's passes fused (included by simd/loops.hpp in its per-ISA namespace) -----
// softmax and log_softmax over a run took x - m, then exp, as two passes over
// the block (PyTorch's lastdim kernel takes exp(x - m) in one); the same two
// IEEE-rounded steps in one loop give the same bits.

// e = exp(x - m), m one number (e and x distinct or equal).
template <class T>
void exp_shift_run(T* e, const T* x, T m, int64_t n) {
  bin_run<T>(e, 1, x, 1, &m, 0, n, [](T v, T s) TG_INLINE_LAMBDA { return k_exp(v - s); });
}

// o = (x - m) - c, rounded after each subtraction as log_softmax's two passes were
// (not x - (m + c): at logits of 1e7 in float32, m + log s rounds to m).
template <class T>
void sub2_run(T* o, const T* x, T m, T c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - m) - c;
}

// The first-order VJPs' elementwise ends in one pass each (kernels/reductions.cpp
// normaliser_vjp, built for SSE2, ran them at its width): log_softmax's
// o = g - exp(y) s, softmax's o = y (g - s); each operation rounded as before.
template <class T>
void lsm_vjp_run(T* o, const T* g, const T* y, T s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] - k_exp(y[i]) * s;
}
template <class T>
void sm_vjp_run(T* o, const T* g, const T* y, T s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = y[i] * (g[i] - s);
}
