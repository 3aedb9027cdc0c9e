# Experiments built on the training library: the thin-keys demo (train,
# compress, evaluate end to end) and the selection-task experiment over
# d_select and the number of patterns. Kept out of thinkeys_train so that
# training does not depend on compress/ and eval/. Included from the
# top-level CMakeLists.txt after src/train/train.cmake.
thinkeys_library(thinkeys_experiments DEPENDS thinkeys_train thinkeys_eval SOURCES
  src/experiments/selection_tasks.cpp
  src/experiments/selection_experiment.cpp
  src/experiments/selection_key_rank.cpp
  src/experiments/demo.cpp
)

target_link_libraries(thinkeys PRIVATE thinkeys_experiments)
target_sources(thinkeys PRIVATE
  src/cli/cmd_selection.cpp
  src/cli/cmd_demo.cpp
)
