#include "zebra/ops/adamw.hpp"

#include <cmath>

namespace zebra {

template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, std::int64_t n, const AdamWHyper& h, std::int64_t step,
                  bool decay, double grad_scale) {
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(h.beta1, static_cast<double>(step))));
  const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(h.beta2, static_cast<double>(step))));
  const T lr = static_cast<T>(h.lr), eps = static_cast<T>(h.eps), gs = static_cast<T>(grad_scale);
  const T wd = decay ? static_cast<T>(h.weight_decay) : T(0);
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    T g = grads[i] * gs;
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    T m_hat = m[i] * c1, v_hat = v[i] * c2;
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * params[i]);
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, std::int64_t, const AdamWHyper&,
                                  std::int64_t, bool, double);
template void adamw_update<double>(double*, const double*, double*, double*, std::int64_t, const AdamWHyper&,
                                   std::int64_t, bool, double);

}  // namespace zebra
