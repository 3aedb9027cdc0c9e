#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/model_loader.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "eval/spectrum.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {
namespace {

struct Means {
  double r90 = 0, r95 = 0, r99 = 0, quarter = 0, half = 0;
  bool any = false;
};

Means mean_of(const std::vector<HeadSpectrum>& heads) {
  Means m;
  if (heads.empty()) return m;
  for (const auto& h : heads) {
    m.r90 += h.rank90;
    m.r95 += h.rank95;
    m.r99 += h.rank99;
    m.quarter += h.energy_quarter;
    m.half += h.energy_half;
  }
  const double n = static_cast<double>(heads.size());
  return {m.r90 / n, m.r95 / n, m.r99 / n, m.quarter / n, m.half / n, true};
}

nlohmann::json to_json(const std::vector<HeadSpectrum>& heads) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& h : heads)
    a.push_back({{"sigma", h.sigma},
                 {"energy", h.energy},
                 {"rank90", h.rank90},
                 {"rank95", h.rank95},
                 {"rank99", h.rank99},
                 {"energy_quarter", h.energy_quarter},
                 {"energy_half", h.energy_half}});
  return a;
}

// Concatenates one kind of head over all layers, for the overall means.
std::vector<HeadSpectrum> all_layers(const SpectrumReport& r,
                                     std::vector<HeadSpectrum> LayerSpectrum::*kind) {
  std::vector<HeadSpectrum> out;
  for (const auto& l : r.layers) out.insert(out.end(), (l.*kind).begin(), (l.*kind).end());
  return out;
}

void print_ranks(const Means& m) {
  if (m.any)
    std::printf("  %5.1f %5.1f %5.1f", m.r90, m.r95, m.r99);
  else
    std::printf("  %17s", "");
}

}  // namespace

Command add_spectrum(CLI::App& app) {
  struct Opts {
    std::string model, data, tokenizer;
    SpectrumOptions s;
    bool json = false, no_bos = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "spectrum",
      "Singular-value energy of W_K vs W_Q (and of calibration keys vs queries) per head");
  add_model_argument(sub, opts->model);
  sub->add_option("--data", opts->data, "Text for key/query spectra (uncompressed models only)");
  sub->add_option("--calib-tokens", opts->s.calibration_tokens, "Tokens of --data to use")
      ->check(CLI::PositiveNumber);
  sub->add_option("--ctx", opts->s.ctx, "Window length for --data")->check(CLI::Range(2, 1 << 20));
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS to the text");
  sub->add_flag("--json", opts->json, "Print JSON");
  return {
      sub, [opts] {
        Model m = load_model(opts->model);
        std::vector<int32_t> tokens;
        if (!opts->data.empty()) {
          if (m.config.thin_keys)  // before tokenizing a possibly large file
            throw Error("spectrum --data needs an uncompressed model; pass the original model");
          std::string text = read_file_bytes(opts->data);
          if (text.empty()) throw Error("data file " + opts->data + " is empty");
          auto mt = model_tokenizer(opts->model, opts->tokenizer, &m);
          // ~16 bytes per token is generous for every tokenizer we load.
          const size_t bytes = static_cast<size_t>(opts->s.calibration_tokens) * 16;
          tokens = prompt_tokens(m, mt, text.substr(0, bytes), opts->no_bos ? 0 : -1);
        }
        SpectrumOptions so = opts->s;
        so.show_progress = !opts->json;
        SpectrumReport r = measure_spectrum(m, tokens, so);
        const ModelConfig& c = m.config;
        if (opts->json) {
          nlohmann::json layers = nlohmann::json::array();
          for (const auto& l : r.layers) {
            nlohmann::json j = {{"key_width", l.key_width},
                                {"query_width", l.query_width},
                                {"weight_keys", to_json(l.weight_keys)},
                                {"weight_queries", to_json(l.weight_queries)}};
            if (!l.data_keys.empty()) {
              j["data_keys"] = to_json(l.data_keys);
              j["data_queries"] = to_json(l.data_queries);
            }
            layers.push_back(std::move(j));
          }
          nlohmann::json j = {{"model", opts->model},
                              {"head_dim", r.head_dim},
                              {"n_heads", c.n_heads},
                              {"n_kv_heads", c.n_kv_heads},
                              {"compressed", r.compressed},
                              {"calibration_tokens", r.calibration_tokens},
                              {"layers", layers}};
          if (!opts->data.empty()) j["data"] = opts->data;
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        const bool data = r.calibration_tokens > 0;
        std::printf("%s: %d layers, %d heads, %d KV heads, head_dim %d%s\n", opts->model.c_str(),
                    c.n_layers, c.n_heads, c.n_kv_heads, r.head_dim,
                    r.compressed ? " (compressed: spectra of the stored, thinned weights)" : "");
        if (data)
          std::printf(
              "calibration: %lld tokens of %s (keys pre-rotation, queries summed per KV head)\n",
              static_cast<long long>(r.calibration_tokens), opts->data.c_str());
        std::printf("rank for 90/95/99%% of the energy, mean over heads\n");
        std::printf("%-5s %6s  %17s  %17s", "layer", "width", "W_K  90   95   99",
                    "W_Q  90   95   99");
        if (data) std::printf("  %17s  %17s", "keys 90   95   99", "qrys 90   95   99");
        std::printf("\n");
        auto row = [&](const char* label, const std::string& width, const Means& wk,
                       const Means& wq, const Means& dk, const Means& dq) {
          std::printf("%-5s %6s", label, width.c_str());
          print_ranks(wk);
          print_ranks(wq);
          if (data) {
            print_ranks(dk);
            print_ranks(dq);
          }
          std::printf("\n");
        };
        for (size_t l = 0; l < r.layers.size(); ++l) {
          const auto& L = r.layers[l];
          row(std::to_string(l).c_str(),
              std::to_string(L.key_width) + "/" + std::to_string(L.query_width),
              mean_of(L.weight_keys), mean_of(L.weight_queries), mean_of(L.data_keys),
              mean_of(L.data_queries));
        }
        const Means wk = mean_of(all_layers(r, &LayerSpectrum::weight_keys));
        const Means wq = mean_of(all_layers(r, &LayerSpectrum::weight_queries));
        const Means dk = mean_of(all_layers(r, &LayerSpectrum::data_keys));
        const Means dq = mean_of(all_layers(r, &LayerSpectrum::data_queries));
        row("mean", "", wk, wq, dk, dq);
        std::printf(
            "energy in the top d/4 = %d | d/2 = %d directions: W_K %.3f | %.3f, W_Q %.3f | %.3f",
            r.head_dim / 4, r.head_dim / 2, wk.quarter, wk.half, wq.quarter, wq.half);
        if (data)
          std::printf(", keys %.3f | %.3f, queries %.3f | %.3f", dk.quarter, dk.half, dq.quarter,
                      dq.half);
        std::printf("\n");
      }};
}

}  // namespace thinkeys::cli
