#pragma once
// Turns a sequence's decoded bytes into the text a client may see so far:
// stop strings are matched on the decoded text and cut (the stop string and
// everything after it never reach the client), and bytes that might still
// become a stop string, or that end in the middle of a UTF-8 character, are
// held back until the next piece decides them.
#include <string>
#include <string_view>
#include <vector>

namespace thinkeys::serve {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Appends decoded bytes; returns the text that is now safe to send.
  std::string push(std::string_view piece);
  // A stop string has matched; push() returns nothing more.
  bool stopped() const { return stopped_; }
  // The end of the sequence: whatever was held back (nothing after a stop),
  // with an unfinished UTF-8 character replaced by U+FFFD.
  std::string finish();
  const std::string& sent() const { return sent_; }  // everything returned so far

 private:
  std::vector<std::string> stops_;
  std::string held_, sent_;
  bool stopped_ = false;
};

// Bytes at the end of `s` that begin a UTF-8 character not yet complete.
std::size_t incomplete_utf8_tail(std::string_view s);

}  // namespace thinkeys::serve
