#include "wire/usage.h"

#include <nlohmann/json.hpp>

#include "wire/json_sax.h"

namespace gimbal::wire {
namespace {

// Reads the top-level "usage" object of a JSON text as it is lexed.
class UsageReader : public internal::SaxTypes {
 public:
  explicit UsageReader(Usage* usage) : usage_(usage) {}
  bool found() const { return found_; }
  bool top_object() const { return top_object_; }

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
  // nlohmann's lexer reads a NUL as the end of the input: such a text is not JSON.
  if (text.find('\0') != std::string_view::npos) return false;
  Usage u = *out;  // fields the text lacks keep their values
  UsageReader reader(&u);
  if (!nlohmann::json::sax_parse(text, &reader) || !reader.top_object() || !reader.found()) {
    return false;
  }
  *out = u;
  return true;
}

}  // namespace gimbal::wire
