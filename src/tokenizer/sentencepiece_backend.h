#pragma once
// The subset of sentencepiece::SentencePieceProcessor thinkeys uses, behind an
// interface. libsentencepiece embeds its own protobuf and exports its symbols,
// which collide with libtorch's libprotobuf in one process (a crash during
// static initialisation). So the real processor lives in a separate module,
// loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) the first time it is needed,
// where it binds to its own protobuf and nothing leaks into the global scope.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace thinkeys {

class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  // Each returns an empty string on success, else SentencePiece's message.
  virtual std::string load_serialized(const std::string& model_proto) = 0;
  virtual std::string encode_ids(std::string_view text, std::vector<int>* ids) const = 0;
  virtual std::string encode_pieces(std::string_view text,
                                    std::vector<std::string>* pieces) const = 0;

  virtual int piece_size() const = 0;
  virtual int piece_to_id(std::string_view piece) const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual bool is_byte(int id) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;

  // Trains a model (SentencePieceTrainer flags string); "" on success.
  virtual std::string train(const std::string& flags) = 0;
};

// Whether this is an AddressSanitizer build, which cannot load the module
// (RTLD_DEEPBIND is not supported under ASan); only a program that links the
// module's code directly (the fuzz targets) has SentencePiece there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizerBuild = true;
#else
inline constexpr bool kAddressSanitizerBuild = false;
#endif
#else
inline constexpr bool kAddressSanitizerBuild = false;
#endif

// Loads the module on first use; throws Error when it cannot be found or loaded.
std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend();

}  // namespace thinkeys
