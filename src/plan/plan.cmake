# Capacity planning: how many sequences of what length a memory budget holds,
# from config.json alone, with the paged cache's own block accounting
# (cache/cache_footprint.h). Torch-free; the `plan` subcommand is a thin CLI
# over it and the server prints sequence_capacity() at start.
thinkeys_library(thinkeys_plan DEPENDS thinkeys_io SOURCES
  src/plan/byte_size.cpp
  src/plan/sequence_capacity.cpp
  src/plan/parameter_count.cpp
  src/plan/model_source.cpp
  src/plan/capacity_plan.cpp
  src/plan/plan_report.cpp
)
