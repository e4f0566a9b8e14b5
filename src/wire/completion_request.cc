#include "wire/completion_request.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "wire/json_sax.h"

namespace gimbal::wire {
namespace {

constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t Fnv(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) h = (h ^ c) * kFnvPrime;
  return h;
}

uint64_t FnvId(uint64_t h, int64_t id) {
  auto u = static_cast<uint64_t>(id);
  for (int i = 0; i < 8; ++i, u >>= 8) h = (h ^ (u & 0xff)) * kFnvPrime;
  return h;
}

// Cuts the prompt stream into blocks and chains their hashes (PromptBlockOptions). A character
// adds block_tokens units and a token id block_chars units, so a block is full after block_chars
// characters or block_tokens ids (or a mix worth as much).
class BlockHasher {
 public:
  BlockHasher(const PromptBlockOptions& o, std::vector<uint64_t>* out)
      : out_(out), max_blocks_(o.max_blocks > 0 ? static_cast<size_t>(o.max_blocks) : SIZE_MAX) {
    if (o.block_tokens <= 0 || !(o.chars_per_token > 0)) return;
    const double chars = std::round(static_cast<double>(o.block_tokens) * o.chars_per_token);
    per_char_ = static_cast<uint64_t>(o.block_tokens);
    per_id_ = static_cast<uint64_t>(std::max(1.0, std::min(chars, 1e9)));
    full_ = per_char_ * per_id_;
  }
  // Where the stream stands, to go back to (a repeated key whose earlier value is dropped).
  struct Mark {
    size_t emitted = 0;
    uint64_t chain = kHashSeed, content = kHashSeed, fill = 0;
  };
  Mark Save() const { return {out_->size(), chain_, content_, fill_}; }
  void Restore(const Mark& m) {
    out_->resize(m.emitted);
    chain_ = m.chain;
    content_ = m.content;
    fill_ = m.fill;
  }
  void Reset() {
    out_->clear();
    chain_ = kHashSeed;
    content_ = kHashSeed;
    fill_ = 0;
  }
  void Text(std::string_view s) {
    if (full_ == 0 || out_->size() >= max_blocks_) return;
    for (unsigned char c : s) {
      content_ = (content_ ^ c) * kFnvPrime;
      fill_ += per_char_;
      if (fill_ >= full_) {
        Emit();
        if (out_->size() >= max_blocks_) return;
      }
    }
  }
  void Id(int64_t id) {
    if (full_ == 0 || out_->size() >= max_blocks_) return;
    content_ = FnvId(content_, id);
    fill_ += per_id_;
    if (fill_ >= full_) Emit();
  }

 private:
  void Emit() {
    chain_ = HashCombine(chain_, content_);
    out_->push_back(chain_);
    content_ = kHashSeed;
    fill_ = 0;
  }

  std::vector<uint64_t>* out_;
  size_t max_blocks_;
  uint64_t per_char_ = 0, per_id_ = 0, full_ = 0;  // full_ 0: off
  uint64_t chain_ = kHashSeed, content_ = kHashSeed, fill_ = 0;
};

// Separator characters standing for a chat message's role and template (kChatMessageChars).
constexpr std::string_view kMessageSeparator = "\x1e\x1e\x1e\x1e\x1e\x1e\x1e\x1e";
static_assert(kMessageSeparator.size() == kChatMessageChars);

// Reads the fields of CompletionRequest from a request body as it is lexed, without building the
// document. Field checks are those of a document walk: the first problem found ends the parse
// with a message naming it.
class RequestReader : public internal::SaxTypes {
 public:
  RequestReader(CompletionRequest* out, bool chat, const PromptBlockOptions& blocks)
      : r_(out),
        chat_(chat),
        keep_ids_(blocks.keep_token_ids && !chat),
        max_ids_(blocks.max_blocks > 0 && blocks.block_tokens > 0
                     ? static_cast<size_t>(blocks.max_blocks * blocks.block_tokens)
                     : SIZE_MAX),
        blocks_(blocks, &out->block_hashes) {}

  // The error that stopped the parse; OK when the JSON itself was malformed (or fine).
  const Status& error() const { return error_; }
  Status Finish() {
    if (chat_ && !messages_seen_) return InvalidArgument("'messages' must be an array of messages");
    if (!chat_ && !prompt_seen_) return InvalidArgument("'prompt' is required");
    // Only a prompt that is exactly one list of ids keeps them (every id read as an integer).
    if (r_->prompts != 1 || r_->prompt_chars != 0 || integer_ids_ != r_->prompt_token_ids) {
      r_->token_ids.clear();
    }
    if (r_->max_completion_tokens >= 0) {
      r_->max_output_tokens = r_->max_completion_tokens;
    } else if (r_->max_tokens >= 0) {
      r_->max_output_tokens = r_->max_tokens;
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
    // Above INT64_MAX: an integer no field can hold (never wrapped to a negative one).
    if (v > static_cast<number_unsigned_t>(INT64_MAX)) return Scalar(Value::kHuge);
    int_ = static_cast<int64_t>(v);
    return Scalar(Value::kInt);
  }
  bool number_float(number_float_t, const string_t&) { return Scalar(Value::kOther); }
  bool string(string_t& v) { return String(v); }
  bool String(std::string_view v) {
    str_ = v;
    return Scalar(Value::kString);
  }
  bool binary(binary_t&) { return Scalar(Value::kOther); }
  bool start_object(std::size_t) { return Open(true); }
  bool start_array(std::size_t) { return Open(false); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(string_t& k) { return Key(k); }
  bool Key(std::string_view k) {
    switch (Parent()) {
      case Kind::kTop:
        field_ = FieldOf(k);
        ResetField();
        if (ChangesPromptTokens(k)) r_->prompt_tokens_unlike_text = true;
        if (field_ == Field::kPrompt && !chat_) {  // a repeated key: the last one counts
          prompt_seen_ = true;
          r_->prompt_chars = 0;
          r_->prompt_token_ids = 0;
          r_->prompts = 0;
          r_->prompt_hash = kHashSeed;
          blocks_.Reset();
          r_->token_ids.clear();
          integer_ids_ = 0;
          prompt_ids_counted_ = false;
        } else if (field_ == Field::kMessages && chat_) {
          messages_seen_ = true;
          r_->prompt_chars = 0;
          r_->messages = 0;
          r_->prompt_hash = kHashSeed;
          blocks_.Reset();
        } else if (field_ == Field::kStreamOptions) {
          r_->include_usage = false;
        }
        break;
      case Kind::kMessage:
        content_key_ = k == "content";
        if (content_key_) RepeatMark(&content_mark_);
        // An assistant's earlier tool calls are prompt tokens the text does not show.
        if (k == "tool_calls" || k == "function_call") r_->prompt_tokens_unlike_text = true;
        break;
      case Kind::kPart:
        text_key_ = k == "text";
        if (text_key_) RepeatMark(&text_mark_);
        // A part that is not text (an image, audio, a file) adds tokens the text does not show.
        if (!text_key_ && k != "type") r_->prompt_tokens_unlike_text = true;
        break;
      case Kind::kStreamOptions:
        usage_key_ = k == "include_usage";
        if (usage_key_) r_->include_usage = false;  // the last one counts
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
    kStreamOptions,
    kMaxTokens,
    kMaxCompletion,
    kPriority,
    kUser,
    kTrafficClass,
    kN,
    kPrompt,
    kMessages
  };
  // What the container at each depth is, as far as the request's fields go.
  enum class Kind {
    kIgnore,
    kTop,
    kStreamOptions,
    kPrompt,
    kIds,
    kMessages,
    kMessage,
    kContent,
    kPart
  };
  // kHuge: an integer above INT64_MAX.
  enum class Value { kNull, kBool, kInt, kHuge, kString, kOther };
  static constexpr int kMaxTracked = 8;

  // Top-level keys with which an engine's prompt tokens are not those of the prompt's text:
  // truncated (truncate_prompt_tokens), or added to (suffix, tool and function schemas, documents,
  // a chat template of the request's own).
  static bool ChangesPromptTokens(std::string_view k) {
    for (std::string_view c : {"truncate_prompt_tokens", "suffix", "tools", "functions",
                               "documents", "chat_template", "chat_template_kwargs"}) {
      if (k == c) return true;
    }
    return false;
  }

  static Field FieldOf(std::string_view k) {
    if (k == "model") return Field::kModel;
    if (k == "stream") return Field::kStream;
    if (k == "stream_options") return Field::kStreamOptions;
    if (k == "max_tokens") return Field::kMaxTokens;
    if (k == "max_completion_tokens") return Field::kMaxCompletion;
    if (k == "priority") return Field::kPriority;
    if (k == "user") return Field::kUser;
    if (k == "gimbal_traffic_class") return Field::kTrafficClass;
    if (k == "n") return Field::kN;
    if (k == "prompt") return Field::kPrompt;
    if (k == "messages") return Field::kMessages;
    return Field::kOther;
  }

  // Back to its absent value, so a repeated top-level key counts with its last value only.
  void ResetField() {
    switch (field_) {
      case Field::kStream:
        r_->stream = false;
        break;
      case Field::kMaxTokens:
        r_->max_tokens = -1;
        break;
      case Field::kMaxCompletion:
        r_->max_completion_tokens = -1;
        break;
      case Field::kPriority:
        r_->priority = 0;
        break;
      case Field::kUser:
        r_->affinity_key = 0;
        break;
      case Field::kTrafficClass:
        r_->traffic_class = -1;
        break;
      case Field::kN:
        r_->n = 1;
        break;
      default:
        break;
    }
  }

  Kind Parent() const {
    if (depth_ == 0 || depth_ > kMaxTracked) return Kind::kIgnore;
    return kinds_[depth_ - 1];
  }

  bool Fail(std::string message) {
    error_ = InvalidArgument(std::move(message));
    return false;
  }
  // The prompt's text as it stood before a message's `content` or a part's `text` was first read:
  // a repeated one goes back there, so only its last value counts, as in a parsed document.
  struct TextMark {
    bool set = false;
    int64_t chars = 0;
    uint64_t hash = 0;
    BlockHasher::Mark blocks;
  };
  void RepeatMark(TextMark* m) {
    if (!m->set) {
      *m = {true, r_->prompt_chars, r_->prompt_hash, blocks_.Save()};
      return;
    }
    r_->prompt_chars = m->chars;
    r_->prompt_hash = m->hash;
    blocks_.Restore(m->blocks);
  }

  bool BadPrompt() { return Fail("'prompt' must be a string, strings, or token ids"); }
  bool BadContent() { return Fail("message 'content' must be a string or a list of parts"); }
  bool BadPart() { return Fail("message content parts must be objects"); }
  bool BadTrafficClass() { return Fail("'gimbal_traffic_class' must be a non-negative integer"); }
  bool OutOfRange() {
    const char* name = field_ == Field::kMaxTokens       ? "max_tokens"
                       : field_ == Field::kMaxCompletion ? "max_completion_tokens"
                       : field_ == Field::kPriority      ? "priority"
                                                         : "gimbal_traffic_class";
    return Fail(std::string("'") + name + "' is out of range (at most 9223372036854775807)");
  }
  bool BadMaxTokens() {
    return Fail(std::string("'") +
                (field_ == Field::kMaxTokens ? "max_tokens" : "max_completion_tokens") +
                "' must be a non-negative integer");
  }

  void AddText(std::string_view s) {
    r_->prompt_chars += static_cast<int64_t>(s.size());
    r_->prompt_hash = Fnv(r_->prompt_hash, s);
    blocks_.Text(s);
  }
  void AddId(int64_t id) {
    r_->prompt_token_ids += 1;
    r_->prompt_hash = FnvId(r_->prompt_hash, id);
    blocks_.Id(id);
    ++integer_ids_;
    if (keep_ids_ && r_->token_ids.size() < max_ids_) r_->token_ids.push_back(id);
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
      case Field::kTrafficClass:
        return BadTrafficClass();
      case Field::kStreamOptions:
        if (object) *kind = Kind::kStreamOptions;
        break;
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
        r_->prompts += 1;
        kind = Kind::kIds;
        break;
      case Kind::kIds:
        r_->prompt_token_ids += 1;
        break;
      case Kind::kMessages:
        if (!object) return Fail("each message must be an object");
        r_->prompt_chars += kChatMessageChars;
        blocks_.Text(kMessageSeparator);
        r_->messages += 1;
        content_key_ = false;
        content_mark_.set = false;
        kind = Kind::kMessage;
        break;
      case Kind::kMessage:
        if (content_key_) {
          if (object) return BadContent();
          kind = Kind::kContent;
        }
        content_key_ = false;
        break;
      case Kind::kContent:
        if (!object) return BadPart();
        text_key_ = false;
        text_mark_.set = false;
        kind = Kind::kPart;
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
      case Kind::kStreamOptions:
        if (usage_key_ && v == Value::kBool) r_->include_usage = bool_;
        usage_key_ = false;
        return true;
      case Kind::kPrompt:
        if (v == Value::kString) {
          r_->prompts += 1;
          AddText(str_);
        } else if (v == Value::kInt) {
          if (!prompt_ids_counted_) r_->prompts += 1;  // loose ids make one prompt
          prompt_ids_counted_ = true;
          AddId(int_);
        } else {
          return BadPrompt();
        }
        return true;
      case Kind::kIds:
        if (v == Value::kInt) {
          AddId(int_);
        } else {
          r_->prompt_token_ids += 1;
        }
        return true;
      case Kind::kMessages:
        return Fail("each message must be an object");
      case Kind::kMessage:
        if (content_key_) {
          if (v == Value::kString) {
            AddText(str_);
          } else if (v != Value::kNull) {
            return BadContent();
          }
        }
        content_key_ = false;
        return true;
      case Kind::kContent:
        return BadPart();
      case Kind::kPart:
        if (text_key_ && v == Value::kString) AddText(str_);
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
        r_->model.assign(str_);
        return true;
      case Field::kStream:
        if (v == Value::kNull) return true;
        if (v != Value::kBool) return Fail("'stream' must be true or false");
        r_->stream = bool_;
        return true;
      case Field::kMaxTokens:
      case Field::kMaxCompletion:
        if (v == Value::kNull) return true;
        if (v == Value::kHuge) return OutOfRange();
        if (v != Value::kInt || int_ < 0) return BadMaxTokens();
        (field_ == Field::kMaxTokens ? r_->max_tokens : r_->max_completion_tokens) = int_;
        return true;
      case Field::kPriority:
        if (v == Value::kNull) return true;
        if (v == Value::kHuge) return OutOfRange();
        if (v != Value::kInt) return Fail("'priority' must be an integer");
        r_->priority = int_;
        return true;
      case Field::kUser:
        r_->affinity_key = 0;
        if (v == Value::kString) r_->affinity_key = AffinityKeyOf(str_);
        return true;
      case Field::kTrafficClass:
        if (v == Value::kNull) return true;
        if (v == Value::kHuge) return OutOfRange();
        if (v != Value::kInt || int_ < 0) return BadTrafficClass();
        r_->traffic_class = int_;
        return true;
      case Field::kN:
        if (v == Value::kInt) r_->n = int_;
        return true;
      case Field::kPrompt:
        if (chat_) return true;
        if (v != Value::kString) return BadPrompt();
        r_->prompts = 1;
        AddText(str_);
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
  bool keep_ids_;
  size_t max_ids_;
  int64_t integer_ids_ = 0;  // ids of the prompt read as integers
  BlockHasher blocks_;
  Status error_;
  int depth_ = 0;
  Kind kinds_[kMaxTracked] = {};
  Field field_ = Field::kOther;
  bool content_key_ = false;
  bool text_key_ = false;
  TextMark content_mark_, text_mark_;  // of the message and the part being read
  bool usage_key_ = false;
  bool prompt_seen_ = false;
  bool prompt_ids_counted_ = false;
  bool messages_seen_ = false;
  // The scalar being reported.
  bool bool_ = false;
  int64_t int_ = 0;
  std::string_view str_;
};

// What FastScan did: read the whole body, stopped where the reader refused a value (its error
// says why), or gave up on something it does not read.
enum class Step { kOk, kStopped, kGiveUp };

// A quick pass over the plain JSON most request bodies are: objects, arrays, strings of bytes
// 0x20-0x7f without escapes (0x7f is valid in a JSON string to nlohmann too), integers of at most
// 18 digits (below INT64_MAX, so never out of range), true, false and null. It hands the reader
// the events nlohmann's SAX parser would, in the same order, so what it reads to the end (or up to
// a value the reader refuses) ends as nlohmann's parse would. On anything else (an escape, a byte
// outside 0x20-0x7f in a string, a fraction or exponent, a long number, malformed JSON) it
// gives up, and the body is read again from the start by nlohmann's parser, which decides.
class FastScan {
 public:
  FastScan(std::string_view body, RequestReader& reader)
      : p_(body.data()), end_(body.data() + body.size()), r_(reader) {}

  Step Run() {
    SkipSpace();
    if (p_ == end_ || *p_ != '{') return Step::kGiveUp;
    const Step s = Value(0);
    if (s != Step::kOk) return s;
    SkipSpace();
    return p_ == end_ ? Step::kOk : Step::kGiveUp;
  }

 private:
  static Step Did(bool accepted) { return accepted ? Step::kOk : Step::kStopped; }

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // A string at p_ (its opening quote): false when it is not one this pass reads.
  bool Str(std::string_view* out) {
    const char* const begin = ++p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(begin, static_cast<size_t>(p_ - begin));
        ++p_;
        return true;
      }
      if (c < 0x20 || c > 0x7f || c == '\\') return false;
      ++p_;
    }
    return false;
  }

  Step Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return Step::kGiveUp;
    }
    p_ += word.size();
    if (word == "null") return Did(r_.null());
    return Did(r_.boolean(word == "true"));
  }

  Step Number() {
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    const char* const digits = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    const auto n = static_cast<size_t>(p_ - digits);
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return Step::kGiveUp;
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return Step::kGiveUp;
    uint64_t v = 0;
    for (const char* d = digits; d != p_; ++d) v = v * 10 + static_cast<uint64_t>(*d - '0');
    if (negative) return Did(r_.number_integer(-static_cast<int64_t>(v)));
    return Did(r_.number_unsigned(v));
  }

  // A value at p_ (not whitespace). `depth`: containers open around it.
  Step Value(int depth) {
    if (p_ == end_) return Step::kGiveUp;
    switch (*p_) {
      case '{':
        return Container(true, depth);
      case '[':
        return Container(false, depth);
      case '"': {
        std::string_view v;
        if (!Str(&v)) return Step::kGiveUp;
        return Did(r_.String(v));
      }
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return Number();
        return Step::kGiveUp;
    }
  }

  // An object or array at p_. The reader refuses to open one nested deeper than kMaxJsonDepth,
  // which bounds the recursion.
  Step Container(bool object, int depth) {
    ++p_;
    if (!(object ? r_.start_object(static_cast<std::size_t>(-1))
                 : r_.start_array(static_cast<std::size_t>(-1)))) {
      return Step::kStopped;
    }
    if (depth > kMaxJsonDepth) return Step::kGiveUp;  // not reached: the reader refuses first
    const char close = object ? '}' : ']';
    SkipSpace();
    if (p_ != end_ && *p_ == close) {
      ++p_;
      return Did(object ? r_.end_object() : r_.end_array());
    }
    for (;;) {
      if (object) {
        std::string_view k;
        if (p_ == end_ || *p_ != '"' || !Str(&k)) return Step::kGiveUp;
        if (!r_.Key(k)) return Step::kStopped;
        SkipSpace();
        if (p_ == end_ || *p_ != ':') return Step::kGiveUp;
        ++p_;
        SkipSpace();
      }
      const Step s = Value(depth + 1);
      if (s != Step::kOk) return s;
      SkipSpace();
      if (p_ == end_) return Step::kGiveUp;
      if (*p_ == ',') {
        ++p_;
        SkipSpace();
        continue;
      }
      if (*p_ != close) return Step::kGiveUp;
      ++p_;
      return Did(object ? r_.end_object() : r_.end_array());
    }
  }

  const char* p_;
  const char* const end_;
  RequestReader& r_;
};

// nlohmann's parser over the whole body.
Result<CompletionRequest> ParseWithNlohmann(std::string_view body, bool chat,
                                            const PromptBlockOptions& blocks) {
  CompletionRequest r;
  RequestReader reader(&r, chat, blocks);
  if (!nlohmann::json::sax_parse(body, &reader)) {
    if (!reader.error().ok()) return reader.error();
    return InvalidArgument("request body is not valid JSON");
  }
  Status done = reader.Finish();
  if (!done.ok()) return done;
  return r;
}

}  // namespace

uint64_t AffinityKeyOf(std::string_view user) {
  const uint64_t h = Fnv(kHashSeed, user);
  return h == 0 ? 1 : h;
}

Result<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat,
                                                 const PromptBlockOptions& blocks) {
  // A raw NUL is never valid JSON, and nlohmann's lexer reads it as the end of the input: what
  // follows it would be forwarded unread.
  if (body.find('\0') != std::string_view::npos) {
    return InvalidArgument("request body is not valid JSON: it contains a NUL byte");
  }
  {
    CompletionRequest r;
    RequestReader reader(&r, chat, blocks);
    switch (FastScan(body, reader).Run()) {
      case Step::kOk: {
        Status done = reader.Finish();
        if (!done.ok()) return done;
        return r;
      }
      case Step::kStopped:
        return reader.error();
      case Step::kGiveUp:
        break;
    }
  }
  return ParseWithNlohmann(body, chat, blocks);
}

namespace internal {

Result<CompletionRequest> ParseCompletionRequestSlow(std::string_view body, bool chat,
                                                     const PromptBlockOptions& blocks) {
  if (body.find('\0') != std::string_view::npos) {
    return InvalidArgument("request body is not valid JSON: it contains a NUL byte");
  }
  return ParseWithNlohmann(body, chat, blocks);
}

}  // namespace internal

}  // namespace gimbal::wire
