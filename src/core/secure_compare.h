// Checking secrets (admin bearer tokens) without telling an attacker, through the time taken,
// how much of a guess was right. Header only; shared by the router and the emulated engines.
#pragma once

#include <cstddef>
#include <string_view>

namespace gimbal {

// True when `got` equals `want`. The time taken depends on want.size() only, not on `got` nor
// on where the two first differ.
inline bool ConstantTimeEquals(std::string_view got, std::string_view want) {
  unsigned diff = got.size() == want.size() ? 0u : 1u;
  for (size_t i = 0; i < want.size(); ++i) {
    const char g = i < got.size() ? got[i] : '\0';
    diff |=
        static_cast<unsigned>(static_cast<unsigned char>(g) ^ static_cast<unsigned char>(want[i]));
  }
  return diff == 0;
}

// True when the value of an Authorization header, `authorization`, is `Bearer <token>`: the
// scheme matched case-insensitively (RFC 7235 section 2.1: `bearer`, `BEARER` too), then one or
// more spaces, then exactly `token`, compared in constant time. False when `token` is empty: a
// caller with no token configured decides by itself what that means.
inline bool BearerMatches(std::string_view authorization, std::string_view token) {
  if (token.empty()) return false;
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  size_t at = kScheme.size();
  if (authorization[at] != ' ') return false;
  while (at < authorization.size() && authorization[at] == ' ') ++at;
  return ConstantTimeEquals(authorization.substr(at), token);
}

}  // namespace gimbal
