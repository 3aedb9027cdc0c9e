#pragma once
// Closed-form optimum of the rank-r approximation of Q K^T (docs/design.md section 3):
// minimise || L_q^T (B A^T - I) L_k ||_F with C_k = L_k L_k^T, C_q = L_q L_q^T.
// With N = L_q^T L_k = U S V^T:  A = L_k^{-T} V_r S_r^{1/2},
// B = L_q^{-T} U_r S_r^{1/2}, and the latent-mode reconstruction
// P = L_k V_r S_r^{-1/2} (A^T P = I). Everything in double precision.
#include <ATen/ATen.h>

namespace thinkeys {

struct KQFactorization {
  at::Tensor Lk, Lq;   // [n, n] lower-triangular Cholesky factors (ridged)
  at::Tensor U, S, V;  // SVD of N = Lq^T Lk, S descending
};

// Ridge: eps * tr(C)/n * I is added to both moments, which keeps the Cholesky
// factors well defined for rank-deficient statistics; B A^T = I at full rank
// holds for any ridge.
KQFactorization kq_factorize(const at::Tensor& Ck, const at::Tensor& Cq, double eps = 1e-6);

struct KeyMaps {
  at::Tensor A;  // [n, r] key map:   k' = A^T k
  at::Tensor B;  // [n, r] query map: q' = B^T q
  at::Tensor P;  // [n, r] latent reconstruction k ~ P (A^T k)
};

KeyMaps kq_maps(const KQFactorization& f, int64_t r);

// Fraction of the objective's total energy left out at rank r: sum_{i>r} s_i^2 / sum s_i^2.
double discarded_energy(const at::Tensor& singular_values, int64_t r);

// Weight SVD ("factored keys", docs/design.md section 2): W = U S V^T of the stacked
// key rows; A = B = P = U_r, so scores become q^T U_r U_r^T k.
KeyMaps weight_svd_maps(const at::Tensor& W, int64_t r, at::Tensor* singular_values = nullptr);

// Key-only PCA: the top-r eigenvectors E_r of the calibration key moment
// (columns of `directions`, by falling eigenvalue); A = B = P = E_r, so scores
// become q^T E_r E_r^T k: the projection that keeps the most key energy,
// blind to which directions the queries read.
KeyMaps key_pca_maps(const at::Tensor& directions, int64_t r);

}  // namespace thinkeys
