#pragma once
// Singular-value energy of keys versus queries, per layer and head: the
// evidence behind "keys are more compressible than queries". From the weights
// (W_K and W_Q head blocks) and, given text, from calibration second moments.
#include <cstdint>
#include <span>
#include <vector>

#include "model/weights.h"

namespace thinkeys {

struct HeadSpectrum {
  std::vector<double> sigma;   // singular values, descending
  std::vector<double> energy;  // energy[i] = sum_{j<=i} sigma_j^2 / sum_j sigma_j^2
  // Smallest rank capturing at least 90/95/99% of the energy (0 if all sigma are 0).
  int rank90 = 0, rank95 = 0, rank99 = 0;
  // Energy captured by the top head_dim/4 and head_dim/2 directions.
  double energy_quarter = 0, energy_half = 0;
};

struct LayerSpectrum {
  int key_width = 0;                      // rows per key block of W_K (head_dim unless compressed)
  int query_width = 0;                    // rows per query head of W_Q
  std::vector<HeadSpectrum> weight_keys;  // per key block (KV head, or shared latent)
  std::vector<HeadSpectrum> weight_queries;  // per query head
  std::vector<HeadSpectrum> data_keys;       // per KV head, pre-rotation calibration keys
  std::vector<HeadSpectrum> data_queries;    // per KV head, its query heads' moments summed
};

struct SpectrumReport {
  int head_dim = 0;
  bool compressed = false;
  int64_t calibration_tokens = 0;  // 0 when no data was given
  std::vector<LayerSpectrum> layers;
};

struct SpectrumOptions {
  int64_t calibration_tokens = 32768;
  int ctx = 512;
  bool show_progress = true;
};

// Energy summary of squared singular values (eigenvalues of a second moment);
// negative round-off is clamped to 0.
HeadSpectrum summarize_spectrum(std::vector<double> squared, int head_dim);

// Weight spectra always; data spectra when `tokens` is non-empty, which needs an
// uncompressed model (throws Error otherwise).
SpectrumReport measure_spectrum(const Model& model, std::span<const int32_t> tokens = {},
                                const SpectrumOptions& options = {});

}  // namespace thinkeys
