#pragma once
// Progress line with rate and ETA for long work. Draws on stderr only when it is
// a terminal, so logs and pipes stay clean; JSON output never mixes with it.
#include <chrono>
#include <cstdint>
#include <string>

namespace thinkeys {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void advance(int64_t amount);
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace thinkeys
