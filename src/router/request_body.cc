#include "router/request_body.h"

#include <algorithm>
#include <cmath>

namespace gimbal::router {
namespace {

using nlohmann::json;

// Adds the characters of `content` (a string or an array of parts with "text").
void CountContent(const json& content, int64_t* chars) {
  if (content.is_string()) {
    *chars += static_cast<int64_t>(content.get_ref<const std::string&>().size());
  } else if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_object()) {
        auto t = part.find("text");
        if (t != part.end() && t->is_string()) {
          *chars += static_cast<int64_t>(t->get_ref<const std::string&>().size());
        }
      }
    }
  }
}

}  // namespace

Result<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat) {
  CompletionRequest r;
  r.body = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (r.body.is_discarded()) return InvalidArgument("request body is not valid JSON");
  if (!r.body.is_object()) return InvalidArgument("request body must be a JSON object");
  const json& b = r.body;
  if (auto it = b.find("model"); it != b.end()) {
    if (!it->is_string()) return InvalidArgument("'model' must be a string");
    r.model = it->get<std::string>();
  }
  if (auto it = b.find("stream"); it != b.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidArgument("'stream' must be true or false");
    r.stream = it->get<bool>();
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto it = b.find(key); it != b.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) {
        return InvalidArgument(std::string("'") + key + "' must be a non-negative integer");
      }
      r.max_output_tokens = it->get<int64_t>();
    }
  }
  if (auto it = b.find("priority"); it != b.end() && !it->is_null()) {
    if (!it->is_number_integer()) return InvalidArgument("'priority' must be an integer");
    r.priority = it->get<int64_t>();
  }
  if (chat) {
    auto it = b.find("messages");
    if (it == b.end() || !it->is_array()) {
      return InvalidArgument("'messages' must be an array of messages");
    }
    for (const auto& m : *it) {
      if (!m.is_object()) return InvalidArgument("each message must be an object");
      if (auto c = m.find("content"); c != m.end()) CountContent(*c, &r.prompt_chars);
      r.prompt_chars += 8;  // role and template tokens, roughly
    }
  } else {
    auto it = b.find("prompt");
    if (it == b.end()) return InvalidArgument("'prompt' is required");
    const json& p = *it;
    if (p.is_string()) {
      r.prompt_chars = static_cast<int64_t>(p.get_ref<const std::string&>().size());
    } else if (p.is_array()) {
      for (const auto& x : p) {
        if (x.is_string()) {
          r.prompt_chars += static_cast<int64_t>(x.get_ref<const std::string&>().size());
        } else if (x.is_number_integer()) {
          r.prompt_token_ids += 1;
        } else if (x.is_array()) {
          r.prompt_token_ids += static_cast<int64_t>(x.size());
        } else {
          return InvalidArgument("'prompt' must be a string, strings, or token ids");
        }
      }
    } else {
      return InvalidArgument("'prompt' must be a string, strings, or token ids");
    }
  }
  return r;
}

int64_t TokenRatio::Estimate(const CompletionRequest& r) const {
  double chars = static_cast<double>(r.prompt_chars);
  int64_t t = r.prompt_token_ids + static_cast<int64_t>(std::ceil(chars / get()));
  return std::max<int64_t>(1, t);
}

void TokenRatio::Observe(int64_t chars, int64_t prompt_tokens) {
  if (!adapt_ || chars < 64 || prompt_tokens <= 0) return;
  double observed = std::clamp(static_cast<double>(chars) / static_cast<double>(prompt_tokens),
                               0.5, 20.0);
  double cur = get();
  // Lost updates under contention only slow the learning down; no lock needed.
  ratio_.store(cur + 0.1 * (observed - cur), std::memory_order_relaxed);
}

namespace {

// Reads the top-level "usage" object of a JSON text as it is lexed, without building the
// document (every answer passes through here).
class UsageReader {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit UsageReader(Usage* usage) : usage_(usage) {}
  bool found() const { return found_; }

  bool null() { return Scalar(); }
  bool boolean(bool) { return Scalar(); }
  bool number_integer(number_integer_t v) { return Integer(static_cast<int64_t>(v)); }
  bool number_unsigned(number_unsigned_t v) { return Integer(static_cast<int64_t>(v)); }
  bool number_float(number_float_t, const string_t&) { return Scalar(); }
  bool string(string_t&) { return Scalar(); }
  bool binary(binary_t&) { return Scalar(); }
  bool start_object(std::size_t) {
    if (depth_ == 0) top_object_ = true;
    if (depth_ == 1 && key_is_usage_) {
      found_ = true;
      in_usage_ = true;
    }
    ++depth_;
    field_ = nullptr;
    return true;
  }
  bool key(string_t& k) {
    if (depth_ == 1) key_is_usage_ = k == "usage";
    if (depth_ == 2 && in_usage_) {
      field_ = k == "prompt_tokens"       ? &usage_->prompt_tokens
               : k == "completion_tokens" ? &usage_->completion_tokens
                                          : nullptr;
    }
    return true;
  }
  bool end_object() {
    --depth_;
    if (depth_ == 1) in_usage_ = false;
    return true;
  }
  bool start_array(std::size_t) {
    ++depth_;
    field_ = nullptr;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }
  bool top_object() const { return top_object_; }

 private:
  bool Scalar() {
    field_ = nullptr;
    return true;
  }
  bool Integer(int64_t v) {
    if (field_ != nullptr && depth_ == 2 && in_usage_) *field_ = v;
    field_ = nullptr;
    return true;
  }

  int depth_ = 0;
  bool top_object_ = false;
  bool key_is_usage_ = false;
  bool in_usage_ = false;
  bool found_ = false;
  int64_t* field_ = nullptr;
  Usage* usage_;
};

}  // namespace

bool FindUsage(std::string_view text, Usage* out) {
  if (text.find("\"usage\"") == std::string_view::npos) return false;
  Usage u = *out;  // fields the text lacks keep their values
  UsageReader reader(&u);
  if (!json::sax_parse(text, &reader) || !reader.top_object() || !reader.found()) return false;
  *out = u;
  return true;
}

}  // namespace gimbal::router
