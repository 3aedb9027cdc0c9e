# Lets clang compile libtorch's headers in C++20 (the sanitizer build, `asan`
# preset, is clang: the fuzz targets need libFuzzer, and the same tree runs the
# bad-input tests).
#
# libtorch before 2.1 (Debian 12 ships 1.13) uses members of
# std::vector<c10::IValue> in inline code while IValue is still incomplete
# (ATen/core/List.h; upstream fixed it in pytorch/pytorch#93978). GCC defers
# those instantiations to the end of the file. Clang instantiates constexpr
# functions where they are used, and libstdc++ 12 makes std::vector's members
# constexpr in C++20, so clang rejects the headers ("arithmetic on a pointer to
# an incomplete type 'c10::IValue'"); clang 14, 15, 16 and 19 all do. In
# libstdc++ 11 they are not constexpr yet, so clang compiling against an older
# GCC installation's headers (--gcc-install-dir, clang >= 16) accepts them. The
# program still links the system's libstdc++.so.6, the one libtorch links.
#
# Only when torch.h fails to compile as is does this pick the newest older GCC
# installation that works; a libtorch whose headers compile (e.g. one with that
# fix) gets no extra flag. THINKEYS_CLANG_GCC_INSTALL_DIR sets the choice by hand.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  return()
endif()

include(CheckCXXSourceCompiles)

# Compiles `#include <torch/torch.h>` in C++20 with FLAGS; caches the answer in VAR.
function(thinkeys_torch_header_check var flags)
  set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
  set(CMAKE_REQUIRED_FLAGS "-std=c++20 ${flags}")
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_source_compiles("#include <torch/torch.h>\nint main() { return 0; }" ${var})
endfunction()

set(THINKEYS_CLANG_GCC_INSTALL_DIR "" CACHE PATH
  "GCC installation whose libstdc++ headers clang uses (empty: the default, or found automatically)")

if(NOT THINKEYS_CLANG_GCC_INSTALL_DIR)
  message(STATUS "Checking that clang compiles libtorch's headers in C++20")
  thinkeys_torch_header_check(THINKEYS_CLANG_TORCH_HEADERS_OK "")
  if(NOT THINKEYS_CLANG_TORCH_HEADERS_OK)
    # The GCC installation clang picked, e.g. /usr/lib/gcc/x86_64-linux-gnu/12.
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -v -E -x c++ /dev/null
      OUTPUT_QUIET ERROR_VARIABLE clang_verbose)
    string(REGEX MATCH "Selected GCC installation: ([^\n]+)" _ "${clang_verbose}")
    set(selected "")
    if(CMAKE_MATCH_1)
      get_filename_component(selected "${CMAKE_MATCH_1}" REALPATH)
    endif()
    set(candidates)
    if(selected)
      get_filename_component(gcc_root "${selected}" DIRECTORY)
      get_filename_component(selected_version "${selected}" NAME)
      file(GLOB installs LIST_DIRECTORIES true "${gcc_root}/*")
      foreach(dir ${installs})
        get_filename_component(version "${dir}" NAME)
        if(IS_DIRECTORY "${dir}" AND version VERSION_LESS selected_version)
          list(APPEND candidates "${dir}")
        endif()
      endforeach()
      list(SORT candidates COMPARE NATURAL ORDER DESCENDING)
    endif()
    foreach(dir ${candidates})
      get_filename_component(version "${dir}" NAME)
      thinkeys_torch_header_check(THINKEYS_CLANG_TORCH_HEADERS_GCC${version} "--gcc-install-dir=${dir}")
      if(THINKEYS_CLANG_TORCH_HEADERS_GCC${version})
        set(THINKEYS_CLANG_GCC_INSTALL_DIR "${dir}" CACHE PATH
          "GCC installation whose libstdc++ headers clang uses" FORCE)
        break()
      endif()
    endforeach()
    if(NOT THINKEYS_CLANG_GCC_INSTALL_DIR)
      message(FATAL_ERROR
        "${CMAKE_CXX_COMPILER} cannot compile libtorch's headers in C++20 against "
        "${selected}'s libstdc++ (libtorch < 2.1 uses std::vector of an incomplete "
        "c10::IValue), and no older GCC installation next to it works (tried: ${candidates}). "
        "Install libstdc++-11-dev (scripts/setup.sh) and use clang >= 16, or a libtorch >= 2.1.")
    endif()
  endif()
endif()

if(THINKEYS_CLANG_GCC_INSTALL_DIR)
  message(STATUS "clang uses the libstdc++ headers of ${THINKEYS_CLANG_GCC_INSTALL_DIR}")
  add_compile_options(--gcc-install-dir=${THINKEYS_CLANG_GCC_INSTALL_DIR})
  add_link_options(--gcc-install-dir=${THINKEYS_CLANG_GCC_INSTALL_DIR})
endif()
