#pragma once

#include <string>

namespace thinkeys {

// The 1, 5 and 15 minute load averages ("0.52 0.61 0.70"), or "unknown" off
// Linux: printed beside timings so a reader can tell how shared the machine was.
std::string load_average();

}  // namespace thinkeys
