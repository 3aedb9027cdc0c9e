// Held-out evaluation over several documents: the index that says where each
// document lies, equal and disjoint per-document slices, the spread over
// slices, and the evaluators' per-document windows. Expectations are derived
// by hand (token positions, window counts, the sample standard deviation) or
// come from a second path (the same document scored as a file of its own).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "eval/document_slices.h"
#include "eval/fidelity.h"
#include "eval/perplexity.h"
#include "model/random_init.h"
#include "test_support.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::vector<DocumentSpan> read_index(const std::string& rows, const std::string& file,
                                     int64_t size) {
  test::TempDir dir;
  test::write_bytes(dir / "INDEX.tsv", "shard\toffset\tbytes\tbook_file\n" + rows);
  return read_document_index(dir / "INDEX.tsv", file, size);
}

TEST(DocumentIndex, KeepsOnlyTheRowsOfTheFileInOrder) {
  auto d = read_index(
      "train-00.txt\t0\t50\ta.txt\n"
      "test.txt\t0\t10\tb.txt\n"
      "test.txt\t13\t7\tc.txt\n"
      "valid.txt\t0\t9\td.txt\n",
      "test.txt", 20);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "b.txt");
  EXPECT_EQ(d[0].offset, 0);
  EXPECT_EQ(d[0].bytes, 10);
  EXPECT_EQ(d[1].name, "c.txt");
  EXPECT_EQ(d[1].offset, 13);
  EXPECT_EQ(d[1].bytes, 7);  // ends exactly at the file's 20 bytes
}

TEST(DocumentIndex, RejectsRangesThatCannotBeThisFile) {
  // Past the end: 13 + 8 = 21 > 20.
  EXPECT_THROW(read_index("test.txt\t13\t8\tc\n", "test.txt", 20), Error);
  // Overlap: the second starts at 9, inside the first [0, 10).
  EXPECT_THROW(read_index("test.txt\t0\t10\ta\ntest.txt\t9\t5\tb\n", "test.txt", 20), Error);
  EXPECT_THROW(read_index("test.txt\tx\t10\ta\n", "test.txt", 20), Error);
  EXPECT_THROW(read_index("test.txt\t-1\t10\ta\n", "test.txt", 20), Error);
  EXPECT_THROW(read_index("test.txt\t0\n", "test.txt", 20), Error);
  EXPECT_THROW(read_index("test.txt\t0\t0\ta\n", "test.txt", 20), Error);
  EXPECT_THROW(read_index("valid.txt\t0\t10\ta\n", "test.txt", 20), Error);  // no row
}

// The real Gutenberg test split: 14 books joined by a three-byte separator,
// and what lies between two books (and after the last) is only newlines, so
// a book's first byte is where the index says it is.
TEST(DocumentIndex, GutenbergTestBooksStartWhereTheIndexSays) {
  THINKEYS_REQUIRE_SHARED(index, "data/gutenberg/INDEX.tsv");
  THINKEYS_REQUIRE_SHARED(data, "data/gutenberg/test.txt");
  const std::string text = test::read_bytes(data);
  const auto books = read_document_index(index, "test.txt", static_cast<int64_t>(text.size()));
  ASSERT_EQ(books.size(), 14u);
  EXPECT_EQ(books.front().name, "pg12089-b9b09c1f.txt");
  EXPECT_EQ(books.front().offset, 0);
  EXPECT_EQ(books.back().offset + books.back().bytes + 3, static_cast<int64_t>(text.size()));
  for (std::size_t i = 0; i < books.size(); ++i) {
    const auto& b = books[i];
    EXPECT_NE(text[static_cast<std::size_t>(b.offset)], '\n') << b.name;
    const int64_t next =
        i + 1 < books.size() ? books[i + 1].offset : static_cast<int64_t>(text.size());
    EXPECT_EQ(next, b.offset + b.bytes + 3) << b.name;
    for (int64_t p = b.offset + b.bytes; p < next; ++p)
      EXPECT_EQ(text[static_cast<std::size_t>(p)], '\n') << "after " << b.name;
  }
}

// Document k holds tokens 100k, 100k+1, ...: a token says where it came from.
std::vector<std::vector<int32_t>> numbered(const std::vector<int>& sizes) {
  std::vector<std::vector<int32_t>> docs;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    docs.emplace_back();
    for (int i = 0; i < sizes[k]; ++i) docs.back().push_back(static_cast<int32_t>(100 * k + i));
  }
  return docs;
}

TEST(DocumentSlices, EqualShareOfEveryDocumentAtTheSlicesOffset) {
  const auto docs = numbered({10, 7, 12});
  const std::vector<std::string> names{"a", "b", "c"};
  const auto s1 = document_slices(docs, names, 3, 1);  // tokens [3, 6) of each
  ASSERT_EQ(s1.size(), 3u);
  const std::vector<std::vector<int32_t>> want{{3, 4, 5}, {103, 104, 105}, {203, 204, 205}};
  for (std::size_t k = 0; k < 3; ++k)
    EXPECT_EQ(std::vector<int32_t>(s1[k].begin(), s1[k].end()), want[k]);
}

TEST(DocumentSlices, SlicesAreDisjointAndNeverCrossADocument) {
  const auto docs = numbered({10, 9, 12});
  const std::vector<std::string> names{"a", "b", "c"};
  std::set<int32_t> seen;
  for (int slice = 0; slice < 3; ++slice)  // 3 x 3 = 9 tokens: fits the shortest
    for (const auto& s : document_slices(docs, names, 3, slice)) {
      ASSERT_EQ(s.size(), 3u);
      EXPECT_EQ(s.front() / 100, s.back() / 100);  // one document per span
      for (int32_t t : s) EXPECT_TRUE(seen.insert(t).second) << "token " << t << " twice";
    }
  EXPECT_EQ(seen.size(), 27u);
}

TEST(DocumentSlices, WholeDocumentsAndTooShortOnes) {
  const auto docs = numbered({10, 7});
  const std::vector<std::string> names{"a", "short-book"};
  const auto whole = document_slices(docs, names, 0, 0);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_EQ(whole[1].size(), 7u);
  EXPECT_NO_THROW(document_slices(docs, names, 7, 0));  // exactly the shortest
  try {
    document_slices(docs, names, 4, 1);  // needs 8 tokens, short-book has 7
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short-book"), std::string::npos) << e.what();
  }
  EXPECT_THROW(document_slices(docs, names, 0, 1), Error);
}

TEST(Spread, SampleStandardDeviationByHand) {
  const std::vector<double> v{1, 2, 3, 4};
  const Spread s = spread_of(v);
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  // squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
  EXPECT_NEAR(s.sd, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  const std::vector<double> one{7};
  EXPECT_EQ(spread_of(one).sd, 0.0);
}

ModelConfig tiny_gpt2() { return gpt2_config({61, 32, 2, 4, 4, 8, 64, 64}); }

// Windows are cut per document: 20 and 5 tokens at ctx 16 make 2 + 1 windows,
// where one stream of 25 would make 2.
TEST(DocumentEvaluation, FidelityCutsWindowsPerDocument) {
  Model m = random_model(tiny_gpt2(), 1, 0.3);
  const auto a = test::random_tokens(20, 61, 1), b = test::random_tokens(5, 61, 2);
  const std::vector<std::span<const int32_t>> docs{a, b};
  FidelityReport r = measure_fidelity(m, m, docs, 16, false);
  EXPECT_EQ(r.tokens, 25);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.overall.scores, 0.0);
}

// The total over documents is each document's own evaluation, weighted by the
// tokens it scored; a document never serves as context for the next.
TEST(DocumentEvaluation, PerplexityTotalsAreTokenWeightedPerDocumentScores) {
  Model m = random_model(tiny_gpt2(), 3, 0.3);
  Model ref = random_model(tiny_gpt2(), 4, 0.3);
  const std::vector<std::vector<int32_t>> docs{test::random_tokens(40, 61, 5),
                                               test::random_tokens(9, 61, 6)};
  PerplexityOptions po{16, 8, false};
  const auto all = evaluate_documents(m, docs, po, &ref);
  ASSERT_EQ(all.per_document.size(), 2u);
  const auto a = evaluate_perplexity(m, docs[0], po, {}, &ref);
  const auto b = evaluate_perplexity(m, docs[1], po, {}, &ref);
  EXPECT_EQ(all.total.tokens_scored, 39 + 8);  // every token but each document's first
  EXPECT_NEAR(all.total.mean_nll, (a.mean_nll * 39 + b.mean_nll * 8) / 47, 1e-9);
  EXPECT_NEAR(all.total.kl_mean, (a.kl_mean * 39 + b.kl_mean * 8) / 47, 1e-9);
  EXPECT_NEAR(all.per_document[1].mean_nll, b.mean_nll, 1e-12);
}

using test::CliResult;
using test::run_cli;

// Two stories in one file with an index: each document's score through
// --documents equals that story scored as a file of its own, and a slice of
// N tokens equals the first N tokens (plus BOS) of the story alone.
TEST(DocumentEvaluationCli, DocumentsScoreAsTheirOwnFiles) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  THINKEYS_REQUIRE_SHARED(tok, "models/stories260K/tok512.bin");
  const std::string a =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her red ball. One day, the ball rolled into the pond.";
  const std::string b =
      "Tom had a big dog called Max. Max liked to run and jump. Every morning Tom and Max went "
      "for a walk to the hill, and they were very happy.";
  test::TempDir dir;
  test::write_bytes(dir / "both.txt", a + "\n\n\n" + b);
  test::write_bytes(dir / "a.txt", a);
  test::write_bytes(dir / "b.txt", b);
  test::write_bytes(dir / "INDEX.tsv", "shard\toffset\tbytes\tname\nboth.txt\t0\t" +
                                           std::to_string(a.size()) + "\ta\nboth.txt\t" +
                                           std::to_string(a.size() + 3) + "\t" +
                                           std::to_string(b.size()) + "\tb\n");
  const std::string common = " --tokenizer " + tok.string() + " --ctx 16 --stride 8 --json";
  auto eval = [&](const std::string& args) {
    CliResult r = run_cli("eval " + model.string() + args + common);
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto both = eval(" --data " + (dir / "both.txt").string() + " --documents " +
                         (dir / "INDEX.tsv").string());
  const auto alone_a = eval(" --data " + (dir / "a.txt").string());
  const auto alone_b = eval(" --data " + (dir / "b.txt").string());
  const auto& docs = both["slices"][0]["documents"];
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_NEAR(docs[0]["perplexity"].get<double>(), alone_a["perplexity"].get<double>(), 1e-9);
  EXPECT_NEAR(docs[1]["perplexity"].get<double>(), alone_b["perplexity"].get<double>(), 1e-9);
  EXPECT_EQ(both["tokens_scored"].get<int64_t>(),
            alone_a["tokens_scored"].get<int64_t>() + alone_b["tokens_scored"].get<int64_t>());

  // Slice 1 of 10 tokens per document = tokens [10, 20); slice 0 = [0, 10),
  // which is the story's first 10 tokens after BOS: --max-tokens 11 alone.
  const auto sliced = eval(" --data " + (dir / "both.txt").string() + " --documents " +
                           (dir / "INDEX.tsv").string() + " --doc-tokens 10 --slices 2");
  ASSERT_EQ(sliced["slices"].size(), 2u);
  EXPECT_EQ(sliced["slices"][1]["tokens_scored"].get<int64_t>(), 2 * 10);  // BOS is not scored
  const auto first_a = eval(" --data " + (dir / "a.txt").string() + " --max-tokens 11");
  EXPECT_NEAR(sliced["slices"][0]["documents"][0]["perplexity"].get<double>(),
              first_a["perplexity"].get<double>(), 1e-9);
  const auto& over = sliced["perplexity_over_slices"];
  const double p0 = sliced["slices"][0]["perplexity"], p1 = sliced["slices"][1]["perplexity"];
  EXPECT_NEAR(over["mean"].get<double>(), (p0 + p1) / 2, 1e-12);
  EXPECT_NEAR(over["sd"].get<double>(), std::abs(p0 - p1) / std::sqrt(2.0), 1e-12);

  CliResult bad = run_cli("eval " + model.string() + " --data " + (dir / "a.txt").string() +
                          " --slice 1" + common);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--doc-tokens"), std::string::npos) << bad.err;
  bad = run_cli("eval " + model.string() + " --data " + (dir / "both.txt").string() +
                " --documents " + (dir / "INDEX.tsv").string() + " --doc-tokens 1000" + common);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("needs 1000"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace thinkeys
