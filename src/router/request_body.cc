#include "router/request_body.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "router/priority_tag.h"

namespace gimbal::router {
namespace {

using nlohmann::json;

// The value types nlohmann::json::sax_parse hands to a reader.
struct SaxTypes {
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;
};

// Reads the fields of CompletionRequest from a request body as it is lexed, without building the
// document. Field checks are those of a document walk: the first problem found ends the parse
// with a message naming it.
class RequestReader : public SaxTypes {
 public:

  RequestReader(CompletionRequest* out, bool chat) : r_(out), chat_(chat) {}

  // The error that stopped the parse; OK when the JSON itself was malformed (or fine).
  const Status& error() const { return error_; }
  Status Finish() {
    if (chat_ && !messages_seen_) return InvalidArgument("'messages' must be an array of messages");
    if (!chat_ && !prompt_seen_) return InvalidArgument("'prompt' is required");
    if (max_completion_seen_) {
      r_->max_output_tokens = max_completion_;
    } else if (max_tokens_seen_) {
      r_->max_output_tokens = max_tokens_;
    }
    return Status::Ok();
  }

  bool null() { return Scalar(Value::kNull); }
  bool boolean(bool v) {
    bool_ = v;
    return Scalar(Value::kBool);
  }
  bool number_integer(number_integer_t v) {
    int_ = static_cast<int64_t>(v);
    return Scalar(Value::kInt);
  }
  bool number_unsigned(number_unsigned_t v) {
    int_ = static_cast<int64_t>(v);
    return Scalar(Value::kInt);
  }
  bool number_float(number_float_t, const string_t&) { return Scalar(Value::kOther); }
  bool string(string_t& v) {
    str_ = &v;
    return Scalar(Value::kString);
  }
  bool binary(binary_t&) { return Scalar(Value::kOther); }
  bool start_object(std::size_t) { return Open(true); }
  bool start_array(std::size_t) { return Open(false); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(string_t& k) {
    switch (Parent()) {
      case Kind::kTop:
        field_ = FieldOf(k);
        if (field_ == Field::kPrompt && !chat_) {  // a repeated key: the last one counts
          prompt_seen_ = true;
          r_->prompt_chars = 0;
          r_->prompt_token_ids = 0;
        } else if (field_ == Field::kMessages && chat_) {
          messages_seen_ = true;
          r_->prompt_chars = 0;
        }
        break;
      case Kind::kMessage:
        content_key_ = k == "content";
        break;
      case Kind::kPart:
        text_key_ = k == "text";
        break;
      default:
        break;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  enum class Field {
    kOther,
    kModel,
    kStream,
    kMaxTokens,
    kMaxCompletion,
    kPriority,
    kUser,
    kPrompt,
    kMessages
  };
  // What the container at each depth is, as far as the request's fields go.
  enum class Kind { kIgnore, kTop, kPrompt, kIds, kMessages, kMessage, kContent, kPart };
  enum class Value { kNull, kBool, kInt, kString, kOther };
  static constexpr int kMaxTracked = 8;

  static Field FieldOf(std::string_view k) {
    if (k == "model") return Field::kModel;
    if (k == "stream") return Field::kStream;
    if (k == "max_tokens") return Field::kMaxTokens;
    if (k == "max_completion_tokens") return Field::kMaxCompletion;
    if (k == "priority") return Field::kPriority;
    if (k == "user") return Field::kUser;
    if (k == "prompt") return Field::kPrompt;
    if (k == "messages") return Field::kMessages;
    return Field::kOther;
  }

  Kind Parent() const {
    if (depth_ == 0 || depth_ > kMaxTracked) return Kind::kIgnore;
    return kinds_[depth_ - 1];
  }

  bool Fail(std::string message) {
    error_ = InvalidArgument(std::move(message));
    return false;
  }
  bool BadPrompt() { return Fail("'prompt' must be a string, strings, or token ids"); }
  bool BadMaxTokens() {
    return Fail(std::string("'") +
                (field_ == Field::kMaxTokens ? "max_tokens" : "max_completion_tokens") +
                "' must be a non-negative integer");
  }

  // A top-level field's value that is an object or an array.
  bool TopContainer(bool object, Kind* kind) {
    switch (field_) {
      case Field::kModel:
        return Fail("'model' must be a string");
      case Field::kStream:
        return Fail("'stream' must be true or false");
      case Field::kMaxTokens:
      case Field::kMaxCompletion:
        return BadMaxTokens();
      case Field::kPriority:
        return Fail("'priority' must be an integer");
      case Field::kPrompt:
        if (chat_) break;
        if (object) return BadPrompt();
        *kind = Kind::kPrompt;
        break;
      case Field::kMessages:
        if (!chat_) break;
        if (object) return Fail("'messages' must be an array of messages");
        *kind = Kind::kMessages;
        break;
      default:
        break;
    }
    return true;
  }

  bool Open(bool object) {
    if (depth_ >= kMaxJsonDepth) {
      return Fail("request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    Kind kind = Kind::kIgnore;
    switch (depth_ == 0 ? Kind::kTop : Parent()) {
      case Kind::kTop:
        if (depth_ == 0) {
          if (!object) return Fail("request body must be a JSON object");
          kind = Kind::kTop;
        } else if (!TopContainer(object, &kind)) {
          return false;
        }
        break;
      case Kind::kPrompt:
        if (object) return BadPrompt();
        kind = Kind::kIds;
        break;
      case Kind::kIds:
        r_->prompt_token_ids += 1;
        break;
      case Kind::kMessages:
        if (!object) return Fail("each message must be an object");
        r_->prompt_chars += 8;  // role and template tokens, roughly
        content_key_ = false;
        kind = Kind::kMessage;
        break;
      case Kind::kMessage:
        if (content_key_ && !object) kind = Kind::kContent;
        content_key_ = false;
        break;
      case Kind::kContent:
        if (object) {
          text_key_ = false;
          kind = Kind::kPart;
        }
        break;
      default:
        break;
    }
    if (depth_ < kMaxTracked) kinds_[depth_] = kind;
    ++depth_;
    return true;
  }

  bool Close() {
    --depth_;
    return true;
  }

  bool Scalar(Value v) {
    switch (depth_ == 0 ? Kind::kIgnore : Parent()) {
      case Kind::kIgnore:
        if (depth_ == 0) return Fail("request body must be a JSON object");
        return true;
      case Kind::kTop:
        return TopScalar(v);
      case Kind::kPrompt:
        if (v == Value::kString) {
          r_->prompt_chars += static_cast<int64_t>(str_->size());
        } else if (v == Value::kInt) {
          r_->prompt_token_ids += 1;
        } else {
          return BadPrompt();
        }
        return true;
      case Kind::kIds:
        r_->prompt_token_ids += 1;
        return true;
      case Kind::kMessages:
        return Fail("each message must be an object");
      case Kind::kMessage:
        if (content_key_ && v == Value::kString)
          r_->prompt_chars += static_cast<int64_t>(str_->size());
        content_key_ = false;
        return true;
      case Kind::kPart:
        if (text_key_ && v == Value::kString)
          r_->prompt_chars += static_cast<int64_t>(str_->size());
        text_key_ = false;
        return true;
      default:
        return true;
    }
  }

  bool TopScalar(Value v) {
    switch (field_) {
      case Field::kModel:
        if (v != Value::kString) return Fail("'model' must be a string");
        r_->model.assign(*str_);
        return true;
      case Field::kStream:
        if (v == Value::kNull) return true;
        if (v != Value::kBool) return Fail("'stream' must be true or false");
        r_->stream = bool_;
        return true;
      case Field::kMaxTokens:
      case Field::kMaxCompletion:
        if (v == Value::kNull) return true;
        if (v != Value::kInt || int_ < 0) return BadMaxTokens();
        if (field_ == Field::kMaxTokens) {
          max_tokens_ = int_;
          max_tokens_seen_ = true;
        } else {
          max_completion_ = int_;
          max_completion_seen_ = true;
        }
        return true;
      case Field::kPriority:
        if (v == Value::kNull) return true;
        if (v != Value::kInt) return Fail("'priority' must be an integer");
        r_->priority = int_;
        return true;
      case Field::kUser:
        r_->affinity_key = 0;
        if (v == Value::kString) {
          uint64_t h = 1469598103934665603ull;  // FNV-1a
          for (unsigned char c : *str_) h = (h ^ c) * 1099511628211ull;
          r_->affinity_key = h == 0 ? 1 : h;
        }
        return true;
      case Field::kPrompt:
        if (chat_) return true;
        if (v != Value::kString) return BadPrompt();
        r_->prompt_chars = static_cast<int64_t>(str_->size());
        return true;
      case Field::kMessages:
        if (!chat_) return true;
        return Fail("'messages' must be an array of messages");
      default:
        return true;
    }
  }

  CompletionRequest* r_;
  bool chat_;
  Status error_;
  int depth_ = 0;
  Kind kinds_[kMaxTracked] = {};
  Field field_ = Field::kOther;
  bool content_key_ = false;
  bool text_key_ = false;
  bool prompt_seen_ = false;
  bool messages_seen_ = false;
  bool max_tokens_seen_ = false;
  bool max_completion_seen_ = false;
  int64_t max_tokens_ = 0;
  int64_t max_completion_ = 0;
  // The scalar being reported.
  bool bool_ = false;
  int64_t int_ = 0;
  string_t* str_ = nullptr;
};

}  // namespace

Result<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat) {
  // A raw NUL is never valid JSON, and nlohmann's lexer reads it as the end of the input: what
  // follows it would be forwarded unread.
  if (body.find('\0') != std::string_view::npos) {
    return InvalidArgument("request body is not valid JSON: it contains a NUL byte");
  }
  CompletionRequest r;
  RequestReader reader(&r, chat);
  if (!json::sax_parse(body, &reader)) {
    if (!reader.error().ok()) return reader.error();
    return InvalidArgument("request body is not valid JSON");
  }
  Status done = reader.Finish();
  if (!done.ok()) return done;
  return r;
}

int64_t TokenRatio::Estimate(const CompletionRequest& r) const {
  double chars = static_cast<double>(r.prompt_chars);
  int64_t t = r.prompt_token_ids + static_cast<int64_t>(std::ceil(chars / get()));
  return std::max<int64_t>(1, t);
}

void TokenRatio::Observe(int64_t chars, int64_t prompt_tokens) {
  if (!Wants(chars) || prompt_tokens <= 0) return;
  double observed =
      std::clamp(static_cast<double>(chars) / static_cast<double>(prompt_tokens), 0.5, 20.0);
  double cur = get();
  // Lost updates under contention only slow the learning down; no lock needed.
  ratio_.store(cur + 0.1 * (observed - cur), std::memory_order_relaxed);
}

namespace {

// Reads the top-level "usage" object of a JSON text as it is lexed, without building the
// document (every answer passes through here).
class UsageReader : public SaxTypes {
 public:

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
  if (text.find('\0') != std::string_view::npos) return false;  // not JSON (see above)
  Usage u = *out;  // fields the text lacks keep their values
  UsageReader reader(&u);
  if (!json::sax_parse(text, &reader) || !reader.top_object() || !reader.found()) return false;
  *out = u;
  return true;
}

}  // namespace gimbal::router
