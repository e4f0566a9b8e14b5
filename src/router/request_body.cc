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

bool FindUsage(std::string_view text, Usage* out) {
  if (text.find("\"usage\"") == std::string_view::npos) return false;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto it = j.find("usage");
  if (it == j.end() || !it->is_object()) return false;
  if (auto p = it->find("prompt_tokens"); p != it->end() && p->is_number_integer()) {
    out->prompt_tokens = p->get<int64_t>();
  }
  if (auto c = it->find("completion_tokens"); c != it->end() && c->is_number_integer()) {
    out->completion_tokens = c->get<int64_t>();
  }
  return true;
}

}  // namespace gimbal::router
