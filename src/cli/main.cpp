// thinkeys command line. Every failure below is reported here as one line on
// stderr with a non-zero exit status.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "model/engine_threads.h"
#include "util/error.h"

namespace {

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"thinkeys: thin-key KV caches for transformer inference"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "BLAS threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  const thinkeys::cli::Command commands[] = {
      thinkeys::cli::add_info(app),      thinkeys::cli::add_generate(app),
      thinkeys::cli::add_eval(app),      thinkeys::cli::add_bench(app),
      thinkeys::cli::add_convert(app),   thinkeys::cli::add_compress(app),
      thinkeys::cli::add_spectrum(app),  thinkeys::cli::add_fidelity(app),
      thinkeys::cli::add_selection(app), thinkeys::cli::add_demo(app),
      thinkeys::cli::add_train(app),     thinkeys::cli::add_finetune(app),
      thinkeys::cli::add_tokenizer(app), thinkeys::cli::add_plan(app),
      thinkeys::cli::add_tokenize(app),  thinkeys::cli::add_chat(app),
      thinkeys::cli::add_serve(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    thinkeys::configure_threads(threads);
    for (const auto& cmd : commands)
      if (cmd.app->parsed()) cmd.run();
  } catch (const thinkeys::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
