// Shared helpers of the fuzz targets: an invariant check that aborts with a message (libFuzzer
// and the replay driver both report an abort as a crash), and a view of the input as text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace gimbal::fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* expr,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s%s%s\n", file, line, expr,
               detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Reads bytes off the front of the input to choose sizes and modes; 0 when it ran out.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  // A value in [lo, hi].
  int Int(int lo, int hi) { return lo + Byte() % (hi - lo + 1); }
  std::string_view Rest() const { return AsText(data_, size_); }
  size_t left() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace gimbal::fuzz

// Aborts with file, line, the expression and `detail` (a std::string) when `cond` is false.
#define FUZZ_CHECK(cond, detail)                                                   \
  do {                                                                             \
    if (!(cond)) ::gimbal::fuzz::CheckFailed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)
