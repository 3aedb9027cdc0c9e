// thinkeys tokenizer train: a SentencePiece BPE model trained through the
// dlopen'ed module (in a process that also has libtorch) loads as a
// tokenizer, round-trips any text, and compresses its training text.
#include <gtest/gtest.h>

#include <random>

#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "train/tokenizer_trainer.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::string corpus() {
  std::mt19937 rng(7);
  const char* words[] = {"lantern", "harbour", "whisper", "copper",  "meadow",
                         "thistle", "quarrel", "gallant", "emberly", "saffron"};
  std::string s;
  for (int line = 0; line < 2000; ++line) {
    for (int w = 0; w < 9; ++w) s += std::string(words[rng() % 10]) + (w < 8 ? " " : "");
    s += line % 7 == 0 ? ", said the captain.\n" : ".\n";
  }
  return s;
}

TEST(TokenizerTrain, BpeModelLoadsRoundTripsAndCompresses) {
  test::TempDir tmp;
  const std::string text = corpus();
  test::write_bytes(tmp / "a.txt", text);
  TokenizerTrainOptions o;
  o.inputs = {tmp / "a.txt"};
  o.out_dir = tmp / "tok";
  o.vocab_size = 420;
  train_sentencepiece_tokenizer(o);
  ASSERT_TRUE(std::filesystem::exists(tmp / "tok" / "tokenizer.model"));

  auto tok = load_tokenizer(tmp / "tok");
  EXPECT_EQ(tok->vocab_size(), 420);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // Text never seen in training, with bytes outside the pieces, round-trips.
  for (std::string s : {std::string("Ünïcödé ✓ and tabs\tand  double  spaces\n"),
                        std::string("\xff\xfe raw bytes"), std::string("lantern meadow")}) {
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
  // The learned merges pay off on text like the training data (bytes alone
  // would give about one byte per token).
  auto ids = tok->encode(text.substr(0, 20000));
  EXPECT_GT(20000.0 / static_cast<double>(ids.size()), 3.0);
}

TEST(TokenizerTrain, BadOptionsFailClearly) {
  test::TempDir tmp;
  TokenizerTrainOptions o;
  o.out_dir = tmp / "tok";
  EXPECT_THROW(train_sentencepiece_tokenizer(o), Error);  // no inputs
  o.inputs = {tmp / "missing.txt"};
  EXPECT_THROW(train_sentencepiece_tokenizer(o), Error);
  test::write_bytes(tmp / "a.txt", "hello\n");
  o.inputs = {tmp / "a.txt"};
  o.vocab_size = 10;
  EXPECT_THROW(train_sentencepiece_tokenizer(o), Error);
}

}  // namespace
}  // namespace thinkeys
