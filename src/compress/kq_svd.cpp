#include "compress/kq_svd.h"

#include <cmath>
#include <tuple>

#include "util/error.h"

namespace thinkeys {
namespace {

at::Tensor ridged_cholesky(const at::Tensor& C, double eps) {
  const int64_t n = C.size(0);
  double scale = C.diagonal().sum().item<double>() / static_cast<double>(n);
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0;
  at::Tensor sym = 0.5 * (C + C.t());
  for (double e = eps; e < 1.0; e *= 100) {
    at::Tensor reg = sym + e * scale * at::eye(n, C.options());
    auto [L, info] = at::linalg_cholesky_ex(reg);
    if (info.item<int64_t>() == 0) return L;
  }
  throw Error("calibration moment matrix is not positive definite even with a ridge");
}

}  // namespace

KQFactorization kq_factorize(const at::Tensor& Ck, const at::Tensor& Cq, double eps) {
  KQFactorization f;
  f.Lk = ridged_cholesky(Ck.to(at::kDouble), eps);
  f.Lq = ridged_cholesky(Cq.to(at::kDouble), eps);
  at::Tensor N = at::matmul(f.Lq.t(), f.Lk);
  std::tie(f.U, f.S, f.V) = at::linalg_svd(N, /*full_matrices=*/false);
  f.V = f.V.t().contiguous();  // linalg_svd returns V^H
  return f;
}

KeyMaps kq_maps(const KQFactorization& f, int64_t r) {
  at::Tensor Ur = f.U.narrow(1, 0, r), Vr = f.V.narrow(1, 0, r), Sr = f.S.narrow(0, 0, r);
  at::Tensor half = Sr.clamp_min(1e-300).sqrt();
  // L^{-T} X solves L^T Y = X.
  auto inv_t = [](const at::Tensor& L, const at::Tensor& X) {
    return at::linalg_solve_triangular(L.t(), X, /*upper=*/true);
  };
  KeyMaps m;
  m.A = inv_t(f.Lk, Vr * half);
  m.B = inv_t(f.Lq, Ur * half);
  m.P = at::matmul(f.Lk, Vr) / half;
  return m;
}

double discarded_energy(const at::Tensor& s, int64_t r) {
  at::Tensor e = s.to(at::kDouble).pow(2);
  double total = e.sum().item<double>();
  if (total <= 0) return 0.0;
  return r >= e.size(0) ? 0.0 : e.narrow(0, r, e.size(0) - r).sum().item<double>() / total;
}

KeyMaps weight_svd_maps(const at::Tensor& W, int64_t r, at::Tensor* singular_values) {
  auto [U, S, Vh] = at::linalg_svd(W.to(at::kDouble), /*full_matrices=*/false);
  if (singular_values) *singular_values = S;
  KeyMaps m;
  m.A = U.narrow(1, 0, r).contiguous();
  m.B = m.A;
  m.P = m.A;
  return m;
}

KeyMaps key_pca_maps(const at::Tensor& directions, int64_t r) {
  KeyMaps m;
  m.A = directions.narrow(1, 0, r).contiguous();
  m.B = m.A;
  m.P = m.A;
  return m;
}

}  // namespace thinkeys
