// Built as the separate module libthinkeys_sentencepiece.so; see
// sentencepiece_backend.h for why it is not linked into the main binary.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "tokenizer/sentencepiece_backend.h"

namespace thinkeys {
namespace {

std::string message(const sentencepiece::util::Status& st) { return st.ok() ? "" : st.ToString(); }

class Processor final : public SentencePieceBackend {
 public:
  std::string load_serialized(const std::string& model_proto) override {
    return message(sp_.LoadFromSerializedProto(model_proto));
  }
  std::string encode_ids(std::string_view text, std::vector<int>* ids) const override {
    return message(sp_.Encode(text, ids));
  }
  std::string encode_pieces(std::string_view text, std::vector<std::string>* pieces) const override {
    return message(sp_.Encode(text, pieces));
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
    return message(sentencepiece::SentencePieceTrainer::Train(flags));
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
