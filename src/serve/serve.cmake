# Serving: the continuous-batching scheduler, OpenAI-compatible request
# parsing and the HTTP server behind `thinkeys serve`. Included from the
# top-level CMakeLists.txt after the thinkeys executable is defined.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# Request parsing alone (torch-free, no HTTP): what the fuzz targets link.
thinkeys_library(thinkeys_serve_api DEPENDS nlohmann_json::nlohmann_json SOURCES
  src/serve/api_request.cpp
  src/serve/text_stream.cpp
)
target_include_directories(thinkeys_serve_api PUBLIC src)

thinkeys_library(thinkeys_serve DEPENDS thinkeys_runtime thinkeys_tokenizer thinkeys_serve_api PkgConfig::HTTPLIB SOURCES
  src/serve/histogram.cpp
  src/serve/scheduler.cpp
  src/serve/server.cpp
)

target_sources(thinkeys PRIVATE src/cli/cmd_serve.cpp)
target_link_libraries(thinkeys PRIVATE thinkeys_serve thinkeys_plan thinkeys_chat)
