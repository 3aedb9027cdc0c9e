# Training: trainable models, the trainer, data parallelism and the training
# subcommands. Included from the top-level CMakeLists.txt after the thinkeys
# executable is defined.

# c10d's ProcessGroupGloo headers include <gloo/...>, which Debian ships in
# libgloo-dev (libtorch itself links libgloo0). Without them the build still
# works and data-parallel training reports that it is unavailable.
find_path(THINKEYS_GLOO_INCLUDE_DIR gloo/context.h)

thinkeys_library(thinkeys_train DEPENDS thinkeys_checkpoint thinkeys_tokenizer SOURCES
  src/train/model_builder.cpp
  src/train/trainable.cpp
  src/train/training_forward.cpp
  src/train/window_dataset.cpp
  src/train/token_cache.cpp
  src/train/training_data.cpp
  src/train/model_output.cpp
  src/train/trainer.cpp
  src/train/train_job.cpp
  src/train/data_parallel.cpp
  src/train/rank_launcher.cpp
  src/train/tokenizer_trainer.cpp
)
if(THINKEYS_GLOO_INCLUDE_DIR)
  target_include_directories(thinkeys_train PRIVATE ${THINKEYS_GLOO_INCLUDE_DIR})
  target_compile_definitions(thinkeys_train PRIVATE THINKEYS_HAVE_GLOO USE_C10D_GLOO)
  message(STATUS "thinkeys: data-parallel training with Gloo")
else()
  message(STATUS "thinkeys: gloo headers not found (install libgloo-dev); no data-parallel training")
endif()

target_link_libraries(thinkeys PRIVATE thinkeys_train)
target_sources(thinkeys PRIVATE
  src/cli/cmd_train.cpp
  src/cli/cmd_finetune.cpp
  src/cli/cmd_tokenizer.cpp
)
