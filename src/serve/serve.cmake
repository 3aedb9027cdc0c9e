# Serving: the continuous-batching scheduler, OpenAI-compatible request
# parsing and the HTTP server behind `thinkeys serve`. Included from the
# top-level CMakeLists.txt after the thinkeys executable is defined.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# Request parsing alone (torch-free, no HTTP): what the fuzz targets link.
add_library(thinkeys_serve_api STATIC
  src/serve/api_request.cpp
  src/serve/text_stream.cpp
)
target_include_directories(thinkeys_serve_api PUBLIC src)
target_link_libraries(thinkeys_serve_api PUBLIC nlohmann_json::nlohmann_json)
target_compile_options(thinkeys_serve_api PRIVATE -Wall -Wextra)

add_library(thinkeys_serve STATIC
  src/serve/histogram.cpp
  src/serve/scheduler.cpp
  src/serve/server.cpp
)
target_link_libraries(thinkeys_serve PUBLIC thinkeys_runtime thinkeys_tokenizer thinkeys_serve_api
  PkgConfig::HTTPLIB)
target_compile_options(thinkeys_serve PRIVATE -Wall -Wextra)

target_sources(thinkeys PRIVATE src/cli/cmd_serve.cpp)
target_link_libraries(thinkeys PRIVATE thinkeys_serve thinkeys_plan thinkeys_chat)
