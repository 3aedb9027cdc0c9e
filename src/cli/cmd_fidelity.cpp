#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/model_loader.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/document_options.h"
#include "cli/shared_options.h"
#include "eval/document_slices.h"
#include "eval/fidelity.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {

Command add_fidelity(CLI::App& app) {
  struct Opts {
    std::string model, reference, data, tokenizer;
    int ctx = 512;
    int64_t max_tokens = 0;
    DocumentOptions documents;
    bool json = false, no_bos = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "fidelity",
      "Per-layer relative error of QK^T, softmax weights and attention output vs the original");
  add_model_argument(sub, opts->model);
  sub->add_option("--reference", opts->reference, "Original model to compare against")->required();
  sub->add_option("--data", opts->data, "UTF-8 text file, run as one document")->required();
  sub->add_option("--ctx", opts->ctx, "Window length in tokens (windows do not overlap)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-tokens", opts->max_tokens, "Use only the first N tokens of the file");
  add_document_options(sub, opts->documents);
  sub->add_option("--tokenizer", opts->tokenizer,
                  "Tokenizer file or directory (default: beside the reference)");
  sub->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS to the document");
  sub->add_flag("--json", opts->json, "Print JSON");
  return {
      sub, [opts] {
        const DocumentOptions& dopt = opts->documents;
        check_document_options(dopt, opts->max_tokens);
        std::string text = read_file_bytes(opts->data);
        if (text.empty()) throw Error("data file " + opts->data + " is empty");
        Model m = load_model(opts->model);
        Model ref = load_model(opts->reference);
        // The original is the model most sure to have its tokenizer beside it.
        auto mt = model_tokenizer(opts->reference, opts->tokenizer, &ref);
        const int bos_mode = opts->no_bos ? 0 : -1;
        std::vector<int> slices{0};
        std::vector<FidelityReport> reports;
        std::size_t n_docs = 1;
        if (!documents_requested(dopt)) {
          auto tokens = prompt_tokens(ref, mt, text, bos_mode);
          if (opts->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > opts->max_tokens)
            tokens.resize(static_cast<size_t>(opts->max_tokens));
          reports.push_back(measure_fidelity(m, ref, tokens, opts->ctx, !opts->json));
        } else {
          const TokenizedDocuments docs =
              tokenize_documents(ref, mt, text, opts->data, dopt, bos_mode);
          n_docs = docs.names.size();
          slices = slice_indices(dopt);
          for (int s : slices) {
            const auto seqs = slice_sequences(docs, dopt, s);
            std::vector<std::span<const int32_t>> spans(seqs.begin(), seqs.end());
            reports.push_back(measure_fidelity(m, ref, spans, opts->ctx, !opts->json));
          }
        }
        std::vector<double> scores, probs, output;
        for (const auto& r : reports) {
          scores.push_back(r.overall.scores);
          probs.push_back(r.overall.probs);
          output.push_back(r.overall.output);
        }
        if (opts->json) {
          auto report_json = [](const FidelityReport& r) {
            nlohmann::json layers = nlohmann::json::array();
            for (const auto& l : r.layers)
              layers.push_back({{"scores", l.scores}, {"probs", l.probs}, {"output", l.output}});
            return nlohmann::json{{"ctx", r.ctx},
                                  {"tokens", r.tokens},
                                  {"windows", r.windows},
                                  {"layers", layers},
                                  {"overall",
                                   {{"scores", r.overall.scores},
                                    {"probs", r.overall.probs},
                                    {"output", r.overall.output}}}};
          };
          nlohmann::json j = report_json(reports.front());
          j["model"] = opts->model;
          j["reference"] = opts->reference;
          j["data"] = opts->data;
          j["documents"] = n_docs;
          if (documents_requested(dopt)) {
            j["documents_index"] = dopt.index;
            j["doc_tokens"] = dopt.per_document;
            nlohmann::json js = nlohmann::json::array();
            for (std::size_t k = 0; k < reports.size(); ++k) {
              auto e = report_json(reports[k]);
              e["slice"] = slices[k];
              js.push_back(e);
            }
            j["slices"] = js;
            auto sp = [](const Spread& s) {
              return nlohmann::json{
                  {"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"min", s.min}, {"max", s.max}};
            };
            j["overall_over_slices"] = {{"scores", sp(spread_of(scores))},
                                        {"probs", sp(spread_of(probs))},
                                        {"output", sp(spread_of(output))}};
          }
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        std::printf("%s vs reference %s\n", opts->model.c_str(), opts->reference.c_str());
        for (std::size_t k = 0; k < reports.size(); ++k) {
          const FidelityReport& r = reports[k];
          std::printf("data %s: %lld tokens in %lld windows of ctx %d", opts->data.c_str(),
                      static_cast<long long>(r.tokens), static_cast<long long>(r.windows), r.ctx);
          if (dopt.per_document > 0)
            std::printf(" (%zu document(s), tokens [%lld, %lld) of each)", n_docs,
                        static_cast<long long>(slices[k] * dopt.per_document),
                        static_cast<long long>((slices[k] + 1) * dopt.per_document));
          else if (n_docs > 1)
            std::printf(" (%zu documents)", n_docs);
          std::printf("\n");
          std::printf("relative Frobenius error ||X - X_ref|| / ||X_ref||\n");
          std::printf("%-7s %12s %12s %12s\n", "layer", "QK^T", "softmax", "output");
          for (size_t l = 0; l < r.layers.size(); ++l)
            std::printf("%-7zu %12.3e %12.3e %12.3e\n", l, r.layers[l].scores, r.layers[l].probs,
                        r.layers[l].output);
          std::printf("%-7s %12.3e %12.3e %12.3e\n", "all", r.overall.scores, r.overall.probs,
                      r.overall.output);
        }
        if (reports.size() > 1) {
          std::printf("over %zu slices (mean +- sd)\n", reports.size());
          for (auto [name, v] : {std::pair{"QK^T", &scores}, std::pair{"softmax", &probs},
                                 std::pair{"output", &output}}) {
            const Spread s = spread_of(*v);
            std::printf("%-7s %.3e +- %.3e (min %.3e, max %.3e)\n", name, s.mean, s.sd, s.min,
                        s.max);
          }
        }
      }};
}

}  // namespace thinkeys::cli
