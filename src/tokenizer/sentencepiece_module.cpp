// Built as the separate module libthinkeys_sentencepiece.so; see
// sentencepiece_backend.h for why it is not linked into the main binary.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <string>

#include "tokenizer/sentencepiece_backend.h"

// Not in the installed headers, but exported by libsentencepiece.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}

namespace thinkeys {
namespace {

std::string message(const sentencepiece::util::Status& st) { return st.ok() ? "" : st.ToString(); }

// libsentencepiece reports most problems as a Status but some by throwing (a
// unigram model with an empty piece makes its Darts trie builder throw, found
// by fuzz_sentencepiece); both come back as the error string.
template <typename F>
std::string guarded(F&& call) {
  try {
    return message(call());
  } catch (const std::exception& e) {
    return std::string("malformed model: ") + e.what();
  }
}

class Processor final : public SentencePieceBackend {
 public:
  std::string load_serialized(const std::string& model_proto) override {
    return guarded([&] { return sp_.LoadFromSerializedProto(model_proto); });
  }
  std::string encode_ids(std::string_view text, std::vector<int>* ids) const override {
    return guarded([&] { return sp_.Encode(text, ids); });
  }
  std::string encode_pieces(std::string_view text,
                            std::vector<std::string>* pieces) const override {
    return guarded([&] { return sp_.Encode(text, pieces); });
  }
  int piece_size() const override { return sp_.GetPieceSize(); }
  int piece_to_id(std::string_view piece) const override { return sp_.PieceToId(piece); }
  std::string id_to_piece(int id) const override { return sp_.IdToPiece(id); }
  bool is_byte(int id) const override { return sp_.IsByte(id); }
  bool is_control(int id) const override { return sp_.IsControl(id); }
  bool is_unknown(int id) const override { return sp_.IsUnknown(id); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  std::string train(const std::string& flags) override {
    // The trainer logs to std::cerr. Under RTLD_DEEPBIND this module binds
    // std::cerr to libstdc++'s own, never-constructed object instead of the
    // executable's copy-relocated one, so any log line crashes. Failures still
    // come back as a Status, so silence the log entirely.
    sentencepiece::logging::SetMinLogLevel(4);
    // --random_seed is spm_train's flag, not a TrainerSpec field: apply it here.
    std::string rest = flags;
    const std::string key = "--random_seed=";
    if (auto pos = rest.find(key); pos != std::string::npos) {
      auto end = rest.find(' ', pos);
      std::string value =
          rest.substr(pos + key.size(), end == std::string::npos ? end : end - pos - key.size());
      sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(std::stoul(value)));
      rest.erase(pos, end == std::string::npos ? end : end - pos + 1);
    }
    return message(sentencepiece::SentencePieceTrainer::Train(rest));
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace
}  // namespace thinkeys

extern "C" __attribute__((visibility("default"))) thinkeys::SentencePieceBackend*
thinkeys_sentencepiece_create() {
  return new thinkeys::Processor();
}
