#include "engine/openai.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <cmath>

namespace gimbal::engine {

namespace {

using json = nlohmann::json;

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t Fnv(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

int64_t CharsToTokens(size_t chars, double chars_per_token) {
  const auto t = static_cast<int64_t>(std::ceil(static_cast<double>(chars) / chars_per_token));
  return std::max<int64_t>(t, 1);
}

// A list of token ids: counts and hashes it; false when some element is not an integer.
bool TokenIds(const json& a, int64_t* count, uint64_t* hash) {
  uint64_t h = kFnvOffset;
  for (const auto& v : a) {
    if (!v.is_number_integer()) return false;
    const int64_t id = v.get<int64_t>();
    h = Fnv(h, &id, sizeof id);
  }
  *count = std::max<int64_t>(static_cast<int64_t>(a.size()), 1);
  *hash = h;
  return true;
}

Status ReadPrompt(const json& p, const ParseOptions& o, CompletionRequest* r) {
  if (p.is_string()) {
    const auto& s = p.get_ref<const std::string&>();
    r->prompt_tokens = CharsToTokens(s.size(), o.chars_per_token);
    r->prompt_hash = Fnv(kFnvOffset, s.data(), s.size());
    return Status::Ok();
  }
  if (p.is_array()) {
    if (p.empty()) return InvalidArgument("'prompt' must not be empty");
    if (TokenIds(p, &r->prompt_tokens, &r->prompt_hash)) return Status::Ok();
    if (p.size() == 1) return ReadPrompt(p[0], o, r);
    return InvalidArgument("batched prompts are not supported by the emulator; send one prompt per request");
  }
  return InvalidArgument("'prompt' must be a string or a list of token ids");
}

Status ReadMessages(const json& m, const ParseOptions& o, CompletionRequest* r) {
  if (!m.is_array() || m.empty()) return InvalidArgument("'messages' must be a non-empty list");
  size_t chars = 0;
  uint64_t h = kFnvOffset;
  for (const auto& msg : m) {
    if (!msg.is_object()) return InvalidArgument("each message must be an object");
    auto it = msg.find("content");
    if (it == msg.end() || it->is_null()) continue;
    if (it->is_string()) {
      const auto& s = it->get_ref<const std::string&>();
      chars += s.size();
      h = Fnv(h, s.data(), s.size());
    } else if (it->is_array()) {
      for (const auto& part : *it) {
        if (!part.is_object()) return InvalidArgument("message content parts must be objects");
        auto t = part.find("text");
        if (t != part.end() && t->is_string()) {
          const auto& s = t->get_ref<const std::string&>();
          chars += s.size();
          h = Fnv(h, s.data(), s.size());
        }
      }
    } else {
      return InvalidArgument("message 'content' must be a string or a list of parts");
    }
  }
  r->prompt_tokens = CharsToTokens(chars, o.chars_per_token);
  r->prompt_hash = h;
  return Status::Ok();
}

// An optional integer field; error when present with another type or out of range.
Status ReadInt(const json& j, const char* key, int64_t lo, int64_t* out, bool* present = nullptr) {
  auto it = j.find(key);
  if (present) *present = false;
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer()) return InvalidArgument(fmt::format("'{}' must be an integer", key));
  const int64_t v = it->get<int64_t>();
  if (v < lo) return InvalidArgument(fmt::format("'{}' must be >= {}", key, lo));
  *out = v;
  if (present) *present = true;
  return Status::Ok();
}

json Usage(const CompletionRequest& req, int64_t completion_tokens) {
  return {{"prompt_tokens", req.prompt_tokens},
          {"total_tokens", req.prompt_tokens + completion_tokens},
          {"completion_tokens", completion_tokens}};
}

}  // namespace

Result<CompletionRequest> ParseCompletionRequest(const std::string& body, bool chat,
                                                 const ParseOptions& options) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (auto it = j.find("model"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return InvalidArgument("'model' must be a string");
    r.model = it->get<std::string>();
  }
  if (auto it = j.find("stream"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidArgument("'stream' must be a boolean");
    r.stream = it->get<bool>();
  }
  if (auto it = j.find("stream_options"); it != j.end() && it->is_object()) {
    auto u = it->find("include_usage");
    if (u != it->end() && u->is_boolean()) r.include_usage = u->get<bool>();
  }
  if (chat) {
    auto it = j.find("messages");
    if (it == j.end()) return InvalidArgument("'messages' is required");
    GIMBAL_RETURN_IF_ERROR(ReadMessages(*it, options, &r));
  } else {
    auto it = j.find("prompt");
    if (it == j.end()) return InvalidArgument("'prompt' is required");
    GIMBAL_RETURN_IF_ERROR(ReadPrompt(*it, options, &r));
  }
  r.max_tokens = options.default_max_tokens;
  bool has_max = false;
  GIMBAL_RETURN_IF_ERROR(ReadInt(j, "max_tokens", 1, &r.max_tokens, &has_max));
  if (chat && !has_max) GIMBAL_RETURN_IF_ERROR(ReadInt(j, "max_completion_tokens", 1, &r.max_tokens));
  GIMBAL_RETURN_IF_ERROR(ReadInt(j, "priority", INT64_MIN, &r.priority));
  int64_t cls = -1;
  GIMBAL_RETURN_IF_ERROR(ReadInt(j, "gimbal_traffic_class", 0, &cls));
  r.traffic_class = static_cast<int32_t>(std::min<int64_t>(cls, INT32_MAX));
  if (auto it = j.find("n"); it != j.end() && it->is_number_integer() && it->get<int64_t>() != 1) {
    return InvalidArgument("only n = 1 is supported by the emulator");
  }
  return r;
}

std::string FillerToken(int64_t i) {
  static constexpr std::array<const char*, 16> kWords = {
      " the", " model", " routes", " tokens", " to", " experts", " on", " every",
      " rank", " and", " all", " ranks", " step", " in", " lockstep", "."};
  return kWords[static_cast<size_t>(i) % kWords.size()];
}

std::string CompletionResponseJson(const CompletionRequest& req, const ResponseIds& ids,
                                   int64_t completion_tokens) {
  std::string text;
  for (int64_t i = 0; i < completion_tokens; ++i) text += FillerToken(i);
  json choice;
  if (req.chat) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text}}},
              {"logprobs", nullptr},
              {"finish_reason", "length"},
              {"stop_reason", nullptr}};
  } else {
    choice = {{"index", 0},
              {"text", text},
              {"logprobs", nullptr},
              {"finish_reason", "length"},
              {"stop_reason", nullptr}};
  }
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array({choice})},
            {"usage", Usage(req, completion_tokens)}};
  return j.dump();
}

std::string StreamChunkJson(const CompletionRequest& req, const ResponseIds& ids, int64_t index,
                            bool last) {
  json choice;
  const json finish = last ? json("length") : json(nullptr);
  if (req.chat) {
    json delta = {{"content", FillerToken(index)}};
    if (index == 0) delta["role"] = "assistant";
    choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}};
  } else {
    choice = {{"index", 0},
              {"text", FillerToken(index)},
              {"logprobs", nullptr},
              {"finish_reason", finish},
              {"stop_reason", nullptr}};
  }
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array({choice})}};
  return j.dump();
}

std::string StreamUsageJson(const CompletionRequest& req, const ResponseIds& ids,
                            int64_t completion_tokens) {
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array()},
            {"usage", Usage(req, completion_tokens)}};
  return j.dump();
}

std::string ErrorJson(int status, const std::string& message) {
  std::string type = "invalid_request_error";
  if (status == 404) type = "not_found_error";
  else if (status >= 500) type = "server_error";
  else if (status == 401 || status == 403) type = "authentication_error";
  json j = {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
  return j.dump();
}

}  // namespace gimbal::engine
