// Fuzz target: net::SseParser fed a byte stream in random pieces. The first byte chooses the
// event size limit, the next bytes the piece sizes (a stream's bytes follow a 0 byte).
// Invariants: the events and the pending bytes do not depend on how the stream was split (as
// long as no piece overflowed the limit); every event's raw text ends a block with a line end;
// an event's fields come from its raw text (parsing the raw text alone gives the same event);
// FormatSseEvent's output parses back to the event it formats.
#include "net/sse.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"

namespace {

using gimbal::net::SseEvent;
using gimbal::net::SseParser;

bool Same(const SseEvent& a, const SseEvent& b) {
  return a.raw == b.raw && a.event == b.event && a.data == b.data && a.has_data == b.has_data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gimbal::fuzz::ByteReader in(data, size);
  const size_t max_event = in.Byte() < 128 ? (size_t{16} << 20) : 64 + in.Byte();
  std::vector<size_t> pieces;
  for (uint8_t b = in.Byte(); b != 0 && in.left() > 0 && pieces.size() < 64; b = in.Byte()) {
    pieces.push_back(b);
  }
  const std::string_view stream = in.Rest();

  // Whole.
  SseParser whole(max_event);
  std::vector<SseEvent> whole_events;
  const bool whole_ok = whole.Feed(stream, whole_events);

  // In pieces (the piece sizes cycle; a 1-byte remainder feeds byte by byte).
  SseParser split(max_event);
  std::vector<SseEvent> split_events;
  bool split_ok = true;
  size_t pos = 0;
  for (size_t k = 0; pos < stream.size(); ++k) {
    const size_t n = pieces.empty() ? 1 : pieces[k % pieces.size()];
    const std::string_view piece = stream.substr(pos, n);
    pos += piece.size();
    if (!split.Feed(piece, split_events)) split_ok = false;
  }

  if (whole_ok && split_ok) {
    FUZZ_CHECK(whole_events.size() == split_events.size(),
               std::to_string(whole_events.size()) + " vs " + std::to_string(split_events.size()));
    for (size_t i = 0; i < whole_events.size(); ++i) {
      FUZZ_CHECK(Same(whole_events[i], split_events[i]), "event " + std::to_string(i));
    }
    FUZZ_CHECK(whole.pending() == split.pending(), "pending bytes differ");
  }
  for (const SseEvent& ev : whole_events) {
    FUZZ_CHECK(!ev.raw.empty(), "empty raw");
    FUZZ_CHECK(ev.raw.back() == '\n' || ev.raw.back() == '\r', "raw does not end a line");
    // The raw block alone parses to the same event (followed by one more byte: a '\r' at the
    // end waits for the next byte, which may make it "\r\n").
    SseParser one;
    std::vector<SseEvent> again;
    FUZZ_CHECK(one.Feed(ev.raw + "x", again), "raw block overflowed");
    FUZZ_CHECK(again.size() == 1 && Same(again[0], ev), "raw block parses differently");
    FUZZ_CHECK(one.pending() == "x", "raw block left bytes over");
    FUZZ_CHECK(!ev.has_data || ev.data.size() < ev.raw.size(), "data longer than the block");
  }

  // FormatSseEvent round trip with a data and event name taken from the stream.
  const std::string_view payload = stream.substr(0, stream.size() / 2);
  std::string name(stream.substr(stream.size() / 2, 16));
  for (char& c : name) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string text(payload);
  for (char& c : text) {
    if (c == '\r') c = ' ';  // FormatSseEvent splits on '\n' only
  }
  SseParser fmt_parser;
  std::vector<SseEvent> formatted;
  FUZZ_CHECK(fmt_parser.Feed(gimbal::net::FormatSseEvent(text, name), formatted), "overflow");
  FUZZ_CHECK(formatted.size() == 1, std::to_string(formatted.size()));
  FUZZ_CHECK(formatted[0].has_data && formatted[0].data == text, "data does not round trip");
  FUZZ_CHECK(fmt_parser.pending().empty(), "bytes left over");
  return 0;
}
