#include <cstdio>

#include "checkpoint/hf_checkpoint.h"
#include "checkpoint/loaded_model.h"
#include "checkpoint/model_loader.h"
#include "cli/commands.h"
#include "cli/shared_options.h"
#include "util/error.h"

namespace thinkeys::cli {

Command add_convert(CLI::App& app) {
  struct Opts {
    std::string model, out, dtype = "stored";
  };
  auto opts = std::make_shared<Opts>();
  auto* sub =
      app.add_subcommand("convert", "Write a model as a Hugging Face-style safetensors directory");
  add_model_argument(sub, opts->model);
  sub->add_option("-o,--out", opts->out, "Output directory (written atomically)")->required();
  sub->add_option("--dtype", opts->dtype,
                  "Weight dtype: stored (the input model's, default), f32, f16 or bf16")
      ->check(CLI::IsMember({"stored", "f32", "f16", "bf16"}));
  return {sub, [opts] {
            const LoadedModel m = load_model_handle(opts->model);
            const DType dt = dtype_for_saving(opts->dtype, m.config());
            save_model(m.model(), opts->out, dt, opts->model);
            std::printf("wrote %s (%s, %s)\n", opts->out.c_str(), m.config().architecture.c_str(),
                        dtype_name(dt));
          }};
}

}  // namespace thinkeys::cli
