#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace thinkeys {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t amount) {
  done_ = std::min(total_, done_ + amount);
  auto now = std::chrono::steady_clock::now();
  if (enabled_ && now - last_draw_ > std::chrono::milliseconds(200)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) {
    draw(true);
    std::fputc('\n', stderr);
  }
}

void Progress::draw(bool final) {
  double t = elapsed_seconds();
  double rate = t > 0 ? static_cast<double>(done_) / t : 0.0;
  double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
  int width = 30;
  int filled = static_cast<int>(width * static_cast<double>(done_) / static_cast<double>(total_));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(static_cast<size_t>(width), '.');
  std::fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s  %.1f %s/s  %s %.0fs  ", label_.c_str(),
               bar.c_str(), 100.0 * static_cast<double>(done_) / static_cast<double>(total_),
               static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate,
               unit_.c_str(), final ? "elapsed" : "ETA", final ? t : eta);
  std::fflush(stderr);
}

}  // namespace thinkeys
