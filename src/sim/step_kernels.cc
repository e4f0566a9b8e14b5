#include "sim/step_kernels.h"

#include <immintrin.h>

#include <cmath>
#include <vector>

namespace gimbal::sim {
namespace {

// 1 - e^-n by table lookup with linear interpolation on [0, 30] (error < 1e-5); 1 beyond. Each
// entry keeps its value and the step to the next one, so a lookup reads one cache line.
constexpr int kActiveTableSize = 4096;
constexpr double kActiveTableMax = 30.0;
struct ActiveEntry {
  double value, step;
};
const std::vector<ActiveEntry> kActiveTable = [] {
  std::vector<double> t(kActiveTableSize + 2);
  for (int i = 0; i <= kActiveTableSize + 1; ++i) {
    t[i] = 1.0 - std::exp(-kActiveTableMax * i / kActiveTableSize);
  }
  std::vector<ActiveEntry> out(kActiveTableSize + 1);
  for (int i = 0; i <= kActiveTableSize; ++i) out[i] = {t[i], t[i + 1] - t[i]};
  return out;
}();

}  // namespace

// y[i] += a * x[i], built for plain x86-64, AVX2 and AVX-512; Axpy picks the widest the CPU has
// on its first call (not an ifunc: resolvers run before a sanitizer's runtime is up). Each element
// is one IEEE multiply and one add in every version (no fused multiply-add: this file is built
// with -ffp-contract=off), so all give the same bits.
void AxpyPlain(double* __restrict y, const double* __restrict x, double a, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
__attribute__((target("avx2"))) void AxpyAvx2(double* __restrict y, const double* __restrict x,
                                              double a, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
__attribute__((target("avx512f"))) void AxpyAvx512(double* __restrict y, const double* __restrict x,
                                                   double a, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void Axpy(double* y, const double* x, double a, size_t n) {
  static const auto impl = __builtin_cpu_supports("avx512f") ? AxpyAvx512
                           : __builtin_cpu_supports("avx2")  ? AxpyAvx2
                                                             : AxpyPlain;
  impl(y, x, a, n);
}

double ActiveProbability(double n) {
  if (n >= kActiveTableMax) return 1.0;
  if (!(n > 0)) return 0.0;
  const double x = n * (kActiveTableSize / kActiveTableMax);
  const auto i = static_cast<int>(x);
  return kActiveTable[i].value + kActiveTable[i].step * (x - i);
}

double SumActiveScalar(const double* n, double* /*scratch*/, int count) {
  double active = 0;
  for (int i = 0; i < count; ++i) active += ActiveProbability(n[i]);
  return active;
}

// The same with AVX2: four lookups at a time (gathers), each lane the same IEEE operations as
// ActiveProbability (no fused multiply-add), then the sum in order.
__attribute__((target("avx2"))) double SumActiveAvx2(const double* n, double* scratch, int count) {
  const __m256d zero = _mm256_setzero_pd();
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d top = _mm256_set1_pd(kActiveTableMax);
  const __m256d scale = _mm256_set1_pd(kActiveTableSize / kActiveTableMax);
  const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
  const double* values = &kActiveTable[0].value;  // entries are {value, step} pairs
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    const __m256d v = _mm256_loadu_pd(n + i);
    const __m256d high = _mm256_cmp_pd(v, top, _CMP_GE_OQ);
    const __m256d inside =
        _mm256_and_pd(_mm256_cmp_pd(v, zero, _CMP_GT_OQ), _mm256_cmp_pd(v, top, _CMP_LT_OQ));
    const __m256d x = _mm256_and_pd(inside, _mm256_mul_pd(v, scale));  // 0 outside
    const __m128i k = _mm256_cvttpd_epi32(x);
    const __m128i at = _mm_slli_epi32(k, 1);
    const __m256d value = _mm256_mask_i32gather_pd(zero, values, at, all, 8);
    const __m256d step = _mm256_mask_i32gather_pd(zero, values + 1, at, all, 8);
    const __m256d p =
        _mm256_add_pd(value, _mm256_mul_pd(step, _mm256_sub_pd(x, _mm256_cvtepi32_pd(k))));
    _mm256_storeu_pd(scratch + i, _mm256_blendv_pd(_mm256_and_pd(high, one), p, inside));
  }
  for (; i < count; ++i) scratch[i] = ActiveProbability(n[i]);
  double active = 0;
  for (int j = 0; j < count; ++j) active += scratch[j];
  return active;
}

double SumActive(const double* n, double* scratch, int count) {
  static const auto impl = __builtin_cpu_supports("avx2") ? SumActiveAvx2 : SumActiveScalar;
  return impl(n, scratch, count);
}

}  // namespace gimbal::sim
