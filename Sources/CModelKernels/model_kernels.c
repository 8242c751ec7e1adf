#include "model_kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

int shoal_kernels_have_avx2(void) {
  static int known = -1;
  if (known < 0) {
    // SHOAL_KERNELS=portable keeps the portable loops (to compare both on one machine).
    const char *setting = getenv("SHOAL_KERNELS");
    __builtin_cpu_init();
    known = !(setting && strcmp(setting, "portable") == 0) && __builtin_cpu_supports("avx2")
            && __builtin_cpu_supports("fma");
  }
  return known;
}

/// Eight outputs from i on; `mask` keeps the lanes to load and store (all of them but at the end
/// of a row shorter than eight).
__attribute__((target("avx2,fma"), always_inline)) static inline void depthwise3x3_block(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const __m256 *w, float *out,
    long i, __m256i mask) {
  __m256 sum = _mm256_mul_ps(w[0], _mm256_maskload_ps(row0 + i, mask));
  sum = _mm256_fmadd_ps(w[1], _mm256_maskload_ps(row0 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[2], _mm256_maskload_ps(row0 + i + tap2, mask), sum);
  sum = _mm256_fmadd_ps(w[3], _mm256_maskload_ps(row1 + i, mask), sum);
  sum = _mm256_fmadd_ps(w[4], _mm256_maskload_ps(row1 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[5], _mm256_maskload_ps(row1 + i + tap2, mask), sum);
  sum = _mm256_fmadd_ps(w[6], _mm256_maskload_ps(row2 + i, mask), sum);
  sum = _mm256_fmadd_ps(w[7], _mm256_maskload_ps(row2 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[8], _mm256_maskload_ps(row2 + i + tap2, mask), sum);
  _mm256_maskstore_ps(out + i, mask, sum);
}

__attribute__((target("avx2,fma"))) static void depthwise3x3_row_avx2(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *weights, float *out,
    long count) {
  __m256 w[9];
  for (int k = 0; k < 9; k++) w[k] = _mm256_set1_ps(weights[k]);
  const __m256i all = _mm256_set1_epi32(-1);
  if (count < 8) {
    // Lanes 0..<count only.
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    depthwise3x3_block(row0, row1, row2, tap1, tap2, w, out, 0, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lanes));
    return;
  }
  long i = 0;
  for (; i + 8 <= count; i += 8) depthwise3x3_block(row0, row1, row2, tap1, tap2, w, out, i, all);
  // The rest as a block of eight overlapping the one before (it writes the same values again).
  if (i < count) depthwise3x3_block(row0, row1, row2, tap1, tap2, w, out, count - 8, all);
}

static void depthwise3x3_row_portable(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *w, float *out,
    long count) {
  for (long i = 0; i < count; i++) {
    float a = w[0] * row0[i] + w[1] * row0[i + tap1] + w[2] * row0[i + tap2];
    float b = w[3] * row1[i] + w[4] * row1[i + tap1] + w[5] * row1[i + tap2];
    float c = w[6] * row2[i] + w[7] * row2[i + tap1] + w[8] * row2[i + tap2];
    out[i] = a + b + c;
  }
}

void shoal_depthwise3x3_row(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *weights,
    float *out, long count) {
  if (shoal_kernels_have_avx2()) {
    depthwise3x3_row_avx2(row0, row1, row2, tap1, tap2, weights, out, count);
  } else {
    depthwise3x3_row_portable(row0, row1, row2, tap1, tap2, weights, out, count);
  }
}
