#include "serve/text_stream.h"

#include <algorithm>

namespace thinkeys::serve {

std::size_t incomplete_utf8_tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose character runs past the end.
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= std::min<std::size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    const std::size_t need = (c & 0xE0) == 0xC0   ? 2
                             : (c & 0xF0) == 0xE0 ? 3
                             : (c & 0xF8) == 0xF0 ? 4
                                                  : 1;
    return need > back ? back : 0;
  }
  return 0;
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return {};
  held_.append(piece);
  // A match can only start inside held_: anything sent was, when sent, no
  // prefix of any stop string.
  std::size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    sent_ += out;
    return out;
  }
  std::size_t keep = 0;  // longest tail of held_ that begins some stop string
  for (const auto& s : stops_)
    for (std::size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  keep = std::max(keep, incomplete_utf8_tail(held_));
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  sent_ += out;
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  std::string out = held_;
  held_.clear();
  if (const std::size_t tail = incomplete_utf8_tail(out))
    out.replace(out.size() - tail, tail, "\xEF\xBF\xBD");
  sent_ += out;
  return out;
}

}  // namespace thinkeys::serve
