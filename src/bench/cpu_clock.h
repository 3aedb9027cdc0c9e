#pragma once

namespace thinkeys {

// CPU seconds this process has used, all threads: beside wall time it shows
// how much of a measurement was spent waiting for a core on a shared machine.
double process_cpu_seconds();

}  // namespace thinkeys
