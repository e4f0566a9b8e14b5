#include "net/sse.h"

namespace gimbal::net {

std::string FormatSseEvent(std::string_view data, std::string_view event) {
  std::string out;
  out.reserve(data.size() + event.size() + 16);
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  size_t start = 0;
  for (;;) {
    size_t nl = data.find('\n', start);
    out += "data: ";
    out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

bool SseParser::Feed(std::string_view bytes, std::vector<SseEvent>& out) {
  buf_.append(bytes);
  // A block ends with a blank line: a line end that starts a line. "\r\n" counts as one line end,
  // so a '\r' at the end of the buffer waits for the next byte.
  size_t block_start = 0;
  size_t i = scan_;
  while (i < buf_.size()) {
    char c = buf_[i];
    if (c != '\n' && c != '\r') {
      at_line_start_ = false;
      ++i;
      continue;
    }
    size_t n = 1;
    if (c == '\r') {
      if (i + 1 >= buf_.size()) break;
      if (buf_[i + 1] == '\n') n = 2;
    }
    i += n;
    if (!at_line_start_) {
      at_line_start_ = true;
      continue;
    }
    if (i - n > block_start) {  // a stray blank line before any field yields nothing
      SseEvent ev;
      ev.raw.assign(buf_, block_start, i - block_start);
      ParseBlock(std::string_view(buf_).substr(block_start, i - block_start), ev);
      out.push_back(std::move(ev));
    }
    block_start = i;
  }
  buf_.erase(0, block_start);
  scan_ = i - block_start;
  if (buf_.size() > max_event_bytes_) {
    buf_.clear();
    scan_ = 0;
    at_line_start_ = true;
    return false;
  }
  return true;
}

void SseParser::ParseBlock(std::string_view block, SseEvent& ev) const {
  size_t pos = 0;
  while (pos < block.size()) {
    size_t end = block.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(pos, end - pos);
    pos = end;
    if (pos < block.size() && block[pos] == '\r') ++pos;
    if (pos < block.size() && block[pos] == '\n') ++pos;
    if (line.empty() || line.front() == ':') continue;
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (ev.has_data) ev.data += '\n';
      ev.data += value;
      ev.has_data = true;
    } else if (field == "event") {
      ev.event = std::string(value);
    }
  }
}

}  // namespace gimbal::net
