// Streamed text of one generation: token pieces (raw bytes) in, text that is
// safe to send out. Two things hold bytes back:
//   - an incomplete UTF-8 character at the end (byte tokens may split one);
//   - a tail that could be the start of a stop string, until the next pieces
//     show whether the stop string follows.
// When a stop string appears, the text before it is released and everything
// from it on is dropped (OpenAI does not return the stop string).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qf::server {

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points
// past U+10FFFF).
bool valid_utf8(std::string_view s);

// `s` with every ill-formed byte sequence replaced by U+FFFD, so it can go
// into JSON.
std::string sanitize_utf8(std::string_view s);

// Length of the trailing bytes of `s` that start a UTF-8 character but do not
// finish it (0 when `s` ends on a character boundary).
size_t incomplete_utf8_tail(std::string_view s);

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});

  // Adds one token's bytes; returns the newly releasable text (maybe empty).
  // After a stop string was seen, returns "" and ignores further input.
  std::string push(std::string_view piece);
  // Releases what is still held back (the generation ended for another
  // reason); an incomplete character at the very end becomes U+FFFD.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace qf::server
