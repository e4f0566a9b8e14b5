// Server-sent events: formatting and an incremental parser.
//
// An event is a block of lines ended by a blank line; `data:` lines carry the payload (several
// are joined with '\n'), `event:` names it, lines starting with ':' are comments. OpenAI-style
// streams send one JSON object per `data:` event and end with `data: [DONE]`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gimbal::net {

// "event: <event>\n" (when given) then one "data: <line>\n" per line of `data`, then "\n".
std::string FormatSseEvent(std::string_view data, std::string_view event = {});

struct SseEvent {
  std::string raw;        // the exact bytes of the block, blank line included
  std::string event;      // the `event:` field, "" when absent
  std::string data;       // `data:` lines joined with '\n'
  bool has_data = false;  // false for comment-only blocks (keep-alive pings)
};

// Splits a byte stream into events. Feed bytes as they arrive, in any pieces; each complete block
// is appended to `out`. Accepts "\n", "\r\n" and "\r" line ends.
class SseParser {
 public:
  explicit SseParser(size_t max_event_bytes = 16 << 20) : max_event_bytes_(max_event_bytes) {}
  // Appends the events completed by `bytes`. False when one event grew past max_event_bytes
  // (the parser then discards what it held).
  bool Feed(std::string_view bytes, std::vector<SseEvent>& out);
  // Bytes of an event not yet complete.
  const std::string& pending() const { return buf_; }

 private:
  void ParseBlock(std::string_view block, SseEvent& ev) const;

  size_t max_event_bytes_;
  std::string buf_;
  size_t scan_ = 0;            // bytes of buf_ already searched for a block end
  bool at_line_start_ = true;  // the byte at scan_ starts a line
};

}  // namespace gimbal::net
