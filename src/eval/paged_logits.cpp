#include "eval/paged_logits.h"

#include <memory>
#include <vector>

#include "runtime/logits_tensor.h"

namespace thinkeys {

WindowLogits paged_window_logits(const Model& model, const BatchDecoderOptions& options) {
  auto decoder = std::make_shared<BatchDecoder>(model, options);
  return [decoder](std::span<const int32_t> window) {
    std::vector<float> first;
    const int id = decoder->add(window.subspan(0, 1), &first);
    std::vector<at::Tensor> rows{logits_tensor(first)};
    rows.reserve(window.size());
    try {
      for (size_t i = 1; i < window.size(); ++i) {
        const int ids[1] = {id};
        rows.push_back(logits_tensor(decoder->step(ids, window.subspan(i, 1))));
      }
    } catch (...) {
      decoder->remove(id);
      throw;
    }
    decoder->remove(id);
    return at::cat(rows, 0);
  };
}

}  // namespace thinkeys
