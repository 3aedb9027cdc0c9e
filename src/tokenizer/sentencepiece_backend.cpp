#include "tokenizer/sentencepiece_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

constexpr const char* kModuleName = "libthinkeys_sentencepiece.so";

std::vector<fs::path> candidate_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("THINKEYS_MODULE_DIR")) dirs.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path());
    dirs.push_back(exe.parent_path().parent_path());
    dirs.push_back(exe.parent_path().parent_path() / "lib" / "thinkeys");
  }
#ifdef THINKEYS_MODULE_DIR
  dirs.emplace_back(THINKEYS_MODULE_DIR);
#endif
  return dirs;
}

using Factory = SentencePieceBackend* (*)();

Factory load_factory() {
  // A program without libtorch (the fuzz targets) may link the module's code
  // directly and export its factory; no protobuf clash is possible there, so
  // use it, which also works under AddressSanitizer.
  if (auto* linked =
          reinterpret_cast<Factory>(::dlsym(RTLD_DEFAULT, "thinkeys_sentencepiece_create")))
    return linked;
  if (kAddressSanitizerBuild)
    throw Error(
        "SentencePiece is unavailable in sanitizer builds (its module needs RTLD_DEEPBIND, "
        "which AddressSanitizer does not support)");
  std::string tried;
  for (const auto& dir : candidate_dirs()) {
    fs::path p = dir / kModuleName;
    if (!fs::exists(p)) {
      tried += " " + p.string();
      continue;
    }
    void* handle = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) throw Error("cannot load " + p.string() + ": " + ::dlerror());
    auto* f = reinterpret_cast<Factory>(::dlsym(handle, "thinkeys_sentencepiece_create"));
    if (f == nullptr) throw Error(p.string() + " is not the thinkeys SentencePiece module");
    return f;  // the module stays loaded for the life of the process
  }
  throw Error(std::string("SentencePiece support module ") + kModuleName + " not found (looked in" +
              tried + "); set THINKEYS_MODULE_DIR");
}

}  // namespace

std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend() {
  static std::once_flag once;
  static Factory factory = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    try {
      factory = load_factory();
    } catch (const Error& e) {
      failure = e.what();
    }
  });
  if (factory == nullptr) throw Error(failure);
  return std::unique_ptr<SentencePieceBackend>(factory());
}

}  // namespace thinkeys
