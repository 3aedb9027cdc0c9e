#pragma once
// `thinkeys train --nproc N`: re-runs this program as N data-parallel ranks on
// this machine, the way torchrun would: each child gets RANK, WORLD_SIZE,
// MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, the same arguments minus
// --nproc, and an equal share of the cores.
#include <string>
#include <vector>

namespace thinkeys {

// This process's argv (from /proc/self/cmdline).
std::vector<std::string> own_command_line();

// A loopback TCP port that was free a moment ago (for MASTER_PORT).
int free_loopback_port();

// Starts the ranks, waits for all of them, and throws Error naming the first
// rank that failed. Only rank 0 should print results.
void launch_ranks(int nproc, std::vector<std::string> args);

// What `--nproc N` means for a command: in a process that was not itself
// started as a rank and N > 1, runs N ranks of this command line and returns
// true (the caller is done). Otherwise returns false: go on as this process's
// rank (RANK/WORLD_SIZE from the environment, or a single process).
bool launch_ranks_if_asked(int nproc);

}  // namespace thinkeys
