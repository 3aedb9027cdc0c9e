# Serving: the continuous-batching scheduler, OpenAI-compatible request
# parsing and the HTTP server behind `thinkeys serve`. Included from the
# top-level CMakeLists.txt after the engine is defined.
add_library(thinkeys_serve STATIC
  src/serve/histogram.cpp
  src/serve/scheduler.cpp
)
target_link_libraries(thinkeys_serve PUBLIC thinkeys_engine)
target_compile_options(thinkeys_serve PRIVATE -Wall -Wextra)
