#pragma once
// Each subcommand registers its options on the CLI11 app and returns the action
// to run once parsing (and global setup such as threads) is done.
#include <CLI/CLI.hpp>
#include <functional>

namespace thinkeys::cli {

struct Command {
  CLI::App* app;
  std::function<void()> run;
};

Command add_info(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_compress(CLI::App& app);
Command add_spectrum(CLI::App& app);
Command add_fidelity(CLI::App& app);
Command add_selection(CLI::App& app);
Command add_demo(CLI::App& app);
Command add_train(CLI::App& app);
Command add_finetune(CLI::App& app);
Command add_tokenizer(CLI::App& app);
Command add_plan(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_serve(CLI::App& app);

}  // namespace thinkeys::cli
