# Fuzz targets: one per parser surface (fuzz/fuzz_<surface>.cpp, each defining
# LLVMFuzzerTestOneInput). Every target is built twice:
#   fuzz_<surface>         libFuzzer binary, only with THINKEYS_FUZZ (the clang
#                          `asan` preset, build-asan/); scripts/fuzz.sh runs it.
#   fuzz_<surface>_replay  plain driver that replays fuzz/corpus/<surface> and
#                          fuzz/regressions/<surface> once; registered with ctest
#                          so every build, sanitized or not, re-checks old crashes.
# Targets marked TORCH link the engine; the rest stay torch-free (and fast to link);
# LIBS names further libraries (e.g. thinkeys_chat).

add_library(thinkeys_fuzz_support STATIC fuzz/scratch_file.cpp fuzz/tokenizer_probe.cpp)
target_link_libraries(thinkeys_fuzz_support PUBLIC thinkeys_base)
target_include_directories(thinkeys_fuzz_support PUBLIC fuzz)
target_compile_definitions(thinkeys_fuzz_support PUBLIC
  THINKEYS_FUZZ_DIR="${PROJECT_SOURCE_DIR}/fuzz")

# The SentencePiece module's code linked straight into torch-free fuzz programs
# (see the comment in src/tokenizer/sentencepiece_backend.cpp).
add_library(thinkeys_fuzz_sentencepiece OBJECT src/tokenizer/sentencepiece_module.cpp)
target_include_directories(thinkeys_fuzz_sentencepiece PRIVATE src)
target_link_libraries(thinkeys_fuzz_sentencepiece PUBLIC PkgConfig::SENTENCEPIECE)

set(THINKEYS_FUZZERS)
set(THINKEYS_LIBFUZZERS)
function(thinkeys_fuzzer surface)
  cmake_parse_arguments(F "TORCH;SENTENCEPIECE" "" "LIBS" ${ARGN})
  set(name fuzz_${surface})
  set(variants ${name}_replay)
  set(fuzzable ${THINKEYS_FUZZ})
  if(fuzzable)
    list(APPEND variants ${name})
  endif()
  foreach(exe ${variants})
    add_executable(${exe} fuzz/${name}.cpp)
    target_link_libraries(${exe} PRIVATE thinkeys_fuzz_support)
    if(F_TORCH)
      target_link_libraries(${exe} PRIVATE thinkeys_engine)
    endif()
    if(F_LIBS)
      target_link_libraries(${exe} PRIVATE ${F_LIBS})
    endif()
    if(F_SENTENCEPIECE)
      target_link_libraries(${exe} PRIVATE thinkeys_fuzz_sentencepiece)
      set_target_properties(${exe} PROPERTIES ENABLE_EXPORTS ON)
    endif()
    set_target_properties(${exe} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  endforeach()
  target_sources(${name}_replay PRIVATE fuzz/replay_main.cpp)
  if(fuzzable)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    set(THINKEYS_LIBFUZZERS ${THINKEYS_LIBFUZZERS} ${name} PARENT_SCOPE)
  endif()
  set(dirs ${PROJECT_SOURCE_DIR}/fuzz/corpus/${surface})
  if(EXISTS ${PROJECT_SOURCE_DIR}/fuzz/regressions/${surface})
    list(APPEND dirs ${PROJECT_SOURCE_DIR}/fuzz/regressions/${surface})
  endif()
  if(THINKEYS_BUILD_TESTS)
    add_test(NAME fuzz_replay_${surface} COMMAND ${name}_replay ${dirs})
    set_tests_properties(fuzz_replay_${surface} PROPERTIES LABELS fuzz_replay)
  endif()
  set(THINKEYS_FUZZERS ${THINKEYS_FUZZERS} ${surface} PARENT_SCOPE)
endfunction()

thinkeys_fuzzer(safetensors)
thinkeys_fuzzer(safetensors_index)
thinkeys_fuzzer(hf_config)
thinkeys_fuzzer(tokenizer_json)
thinkeys_fuzzer(gpt2_bpe)
thinkeys_fuzzer(llama2c_tokenizer)
thinkeys_fuzzer(sentencepiece SENTENCEPIECE)
thinkeys_fuzzer(tokenizer_encode SENTENCEPIECE)
thinkeys_fuzzer(llama2c_header)
thinkeys_fuzzer(llama2c_checkpoint TORCH)
thinkeys_fuzzer(chat_template LIBS thinkeys_chat)
thinkeys_fuzzer(serve_request LIBS thinkeys_serve_api)

# `cmake --build --preset asan --target fuzzers` builds every libFuzzer binary;
# `fuzz_replays` every replay driver.
set(replays ${THINKEYS_FUZZERS})
list(TRANSFORM replays PREPEND fuzz_)
list(TRANSFORM replays APPEND _replay)
add_custom_target(fuzz_replays DEPENDS ${replays})
if(THINKEYS_FUZZ)
  add_custom_target(fuzzers DEPENDS ${THINKEYS_LIBFUZZERS})
endif()
