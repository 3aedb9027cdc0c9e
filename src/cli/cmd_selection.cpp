// thinkeys selection: the paper's synthetic selection experiments, swept over
// d_select and the number of patterns N (src/experiments/selection_experiment.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "experiments/selection_experiment.h"
#include "util/error.h"

namespace thinkeys::cli {
namespace {

std::string percent(double x) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * x);
  return buf;
}

nlohmann::json run_json(const SelectionRunResult& res) {
  const SelectionRun& r = res.run;
  nlohmann::json evals = nlohmann::json::array();
  for (const auto& e : res.evals) evals.push_back({{"step", e.step}, {"accuracy", e.accuracy}});
  nlohmann::json j = {{"task", to_string(r.task)},
                      {"n", r.n},
                      {"d_select", r.d_select},
                      {"per_head", r.d_select / r.heads},
                      {"layers", r.layers},
                      {"steps", r.steps},
                      {"batch", r.batch},
                      {"threshold", r.threshold},
                      {"seed", r.seed},
                      {"best_accuracy", res.best_accuracy},
                      {"converge_step", res.converge_step >= 0 ? nlohmann::json(res.converge_step)
                                                               : nlohmann::json(nullptr)},
                      {"steps_run", res.steps_run},
                      {"stopped_early", res.stopped_early},
                      {"final_loss", res.final_loss},
                      {"seconds", res.seconds},
                      {"evals", evals}};
  if (r.task == SelectionTask::Retrieval) j["pairs"] = r.pairs;
  j["held_out"] = r.held_out;
  if (res.key_rank) {
    const KeyRankSearch& k = *res.key_rank;
    nlohmann::json points = nlohmann::json::array();
    for (const auto& p : k.points)
      points.push_back({{"rank_per_head", p.rank_per_head},
                        {"key_width_total", p.key_width_total},
                        {"accuracy", p.accuracy}});
    const int heads = r.heads;
    j["kqsvd_search"] = {
        {"test_sequences", k.test_sequences},
        {"full_accuracy", k.full_accuracy},
        {"smallest_rank_per_head", k.smallest_rank_per_head > 0
                                       ? nlohmann::json(k.smallest_rank_per_head)
                                       : nlohmann::json(nullptr)},
        {"smallest_key_width_total", k.smallest_rank_per_head > 0
                                         ? nlohmann::json(k.smallest_rank_per_head * heads)
                                         : nlohmann::json(nullptr)},
        {"points", points}};
  }
  return j;
}

void print_table_header(const SelectionRun& r) {
  if (r.task == SelectionTask::Position)
    std::printf(
        "\nPositional selection (copy-back): vocab %d, period 8, length 64; %d layers, %lld "
        "steps x batch %d; threshold %s\n",
        r.n, r.layers, static_cast<long long>(r.steps), r.batch, percent(r.threshold).c_str());
  else
    std::printf(
        "\nContent retrieval, N = %d keys (%d pairs per sequence, vocab %d, chance %s); %d "
        "layers, %lld steps x batch %d; threshold %s\n",
        r.n, r.pairs, 2 * r.n + 1, percent(1.0 / r.n).c_str(), r.layers,
        static_cast<long long>(r.steps), r.batch, percent(r.threshold).c_str());
  std::printf("  %-9s %-6s %-9s %-18s %-10s %s\n", "d_select", "/head", "best acc", "converge step",
              "steps run", "time");
}

std::string skipped_note(const SweepSummary& s) {
  if (s.skipped.empty()) return "";
  std::string out = "   (not run: d_select";
  for (int d : s.skipped) out += " " + std::to_string(d);
  return out + ")";
}

void print_text(const SweepResult& sweep) {
  const SelectionRunResult* prev = nullptr;
  for (const auto& res : sweep.runs) {
    const SelectionRun& r = res.run;
    if (!prev || prev->run.task != r.task || prev->run.n != r.n) print_table_header(r);
    prev = &res;
    std::string conv = res.converge_step >= 0 ? std::to_string(res.converge_step)
                                              : std::string("did not converge");
    std::printf("  %-9d %-6d %-9s %-18s %-10s %.0f s\n", r.d_select, r.d_select / r.heads,
                percent(res.best_accuracy).c_str(), conv.c_str(),
                (std::to_string(res.steps_run) + (res.stopped_early ? "*" : "")).c_str(),
                res.seconds);
    if (res.key_rank) {
      const KeyRankSearch& k = *res.key_rank;
      std::printf("    KQ-SVD after training (%d test sequences; uncompressed %s):",
                  k.test_sequences, percent(k.full_accuracy).c_str());
      for (const auto& p : k.points)
        std::printf(" r%d %s", p.rank_per_head, percent(p.accuracy).c_str());
      if (k.smallest_rank_per_head > 0)
        std::printf("\n    smallest KQ-SVD rank at the threshold: %d per head (%d in all)\n",
                    k.smallest_rank_per_head, k.smallest_rank_per_head * r.heads);
      else
        std::printf("\n    no KQ-SVD rank below head_dim reaches the threshold\n");
    }
  }
  bool any_early = false;
  for (const auto& res : sweep.runs) any_early = any_early || res.stopped_early;
  if (any_early)
    std::printf(
        "  * stopped early: converged and held the threshold for %d more evaluations; best acc "
        "is over the evaluations run\n",
        sweep.runs.front().run.hold);

  bool header = false;
  for (const auto& s : sweep.summary) {
    if (s.task != SelectionTask::Retrieval) continue;
    if (!header) {
      std::printf("\nSmallest d_select reaching the threshold (retrieval), next to log2 N:\n");
      std::printf("  %-5s %-7s %-18s %s\n", "N", "log2 N", "smallest d_select", "/head");
      header = true;
    }
    if (s.smallest_d_select > 0)
      std::printf("  %-5d %-7.0f %-18d %d%s\n", s.n, s.log2_n, s.smallest_d_select,
                  s.smallest_d_select / s.heads, skipped_note(s).c_str());
    else
      std::printf("  %-5d %-7.0f %-18s -\n", s.n, s.log2_n, "none swept");
  }
  for (const auto& s : sweep.summary)
    if (s.task == SelectionTask::Position)
      std::printf(
          "\nPositional selection: smallest d_select reaching the threshold: %s\n",
          s.smallest_d_select > 0 ? std::to_string(s.smallest_d_select).c_str() : "none swept");
  std::printf("\ntotal %.0f s\n", sweep.seconds);
}

}  // namespace

Command add_selection(CLI::App& app) {
  struct Opts {
    std::string task = "both";
    SweepOptions sweep = [] {
      SweepOptions s;
      s.jobs = 2;
      return s;
    }();
    bool quick = false, json = false, no_early_stop = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "selection",
      "Synthetic selection experiments: how many query/key dimensions does selecting among N "
      "patterns need?");
  sub->add_option("--task", opts->task, "position, retrieval or both")
      ->check(CLI::IsMember({"position", "retrieval", "both"}));
  sub->add_option("--n", opts->sweep.ns, "Retrieval: numbers of keys N (default 4,16,64)")
      ->delimiter(',');
  sub->add_option("--d-select", opts->sweep.d_selects,
                  "Total query/key widths over the 4 heads (comma-separated)")
      ->delimiter(',');
  sub->add_option(
      "--steps", opts->sweep.base.steps,
      "Most training steps per run (default 2000; the paper: position 1500, retrieval 3000)");
  sub->add_option("--pairs", opts->sweep.base.pairs,
                  "Retrieval: key-value pairs per sequence (default min(N, 8))");
  sub->add_option("--layers", opts->sweep.base.layers, "Layers (default: position 2, retrieval 4)");
  sub->add_option("--seed", opts->sweep.base.seed, "Seed for model init and data (paper: 42)");
  sub->add_option("--hold", opts->sweep.base.hold,
                  "Stop a run once converged and held for this many more evaluations");
  sub->add_flag("--no-early-stop", opts->no_early_stop, "Train every run for all its steps");
  sub->add_flag("--full-grid", opts->sweep.full_grid,
                "Retrieval: run every (N, d_select), not only up to the first that converges");
  sub->add_flag("--held-out", opts->sweep.base.held_out,
                "Train only on sequences outside a fixed held-out class (1 in 8, by hash of the "
                "tokens) and evaluate only on held-out ones: disjoint by construction");
  sub->add_flag("--kqsvd-search", opts->sweep.key_rank_search,
                "After each full-width run (d_select = width), compress its keys with KQ-SVD at "
                "every rank per head and report the smallest that keeps the threshold");
  sub->add_option("--test-sequences", opts->sweep.test_sequences,
                  "Test-stream sequences for --kqsvd-search (default 2000)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--quick", opts->quick,
                "Smaller sweep: N 4,16; d_select 4,8,64; at most 1500 steps per run");
  sub->add_option("--jobs", opts->sweep.jobs, "Runs trained at the same time (one N per thread)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--json", opts->json, "Print JSON");
  return {sub, [opts, &app, sub] {
            single_blas_thread_unless_asked(app);
            SweepOptions o = opts->sweep;
            o.position = opts->task != "retrieval";
            o.retrieval = opts->task != "position";
            // The default sweep must finish in about 20 minutes on a shared 2-core
            // machine (docs/results/selection.md): N 4, 16, 64 and at most 2000
            // steps per run (the paper: 1500 position, 3000 retrieval). Flags
            // given explicitly win.
            const bool ns_given = sub->get_option("--n")->count() > 0;
            const bool d_given = sub->get_option("--d-select")->count() > 0;
            if (!ns_given)
              o.ns = opts->quick ? std::vector<int>{4, 16} : std::vector<int>{4, 16, 64};
            if (!d_given && opts->quick) o.d_selects = {4, 8, 64};
            if (o.base.steps == 0) o.base.steps = opts->quick ? 1500 : 2000;
            if (opts->no_early_stop) o.base.hold = -1;
            o.show_progress = true;  // stderr, and only on a terminal
            SweepResult sweep = run_sweep(o);
            if (opts->json) {
              nlohmann::json runs = nlohmann::json::array(), summary = nlohmann::json::array();
              for (const auto& r : sweep.runs) runs.push_back(run_json(r));
              for (const auto& s : sweep.summary)
                summary.push_back({{"task", to_string(s.task)},
                                   {"n", s.n},
                                   {"log2_n", s.log2_n},
                                   {"not_run", s.skipped},
                                   {"smallest_kqsvd_rank_per_head",
                                    s.smallest_kqsvd_rank_per_head > 0
                                        ? nlohmann::json(s.smallest_kqsvd_rank_per_head)
                                        : nlohmann::json(nullptr)},
                                   {"smallest_d_select", s.smallest_d_select > 0
                                                             ? nlohmann::json(s.smallest_d_select)
                                                             : nlohmann::json(nullptr)}});
              nlohmann::json j = {{"runs", runs}, {"summary", summary}, {"seconds", sweep.seconds}};
              std::printf("%s\n", j.dump(2).c_str());
              return;
            }
            print_text(sweep);
          }};
}

}  // namespace thinkeys::cli
