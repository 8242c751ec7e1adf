#include "model_kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/// Whether SHOAL_KERNELS is `value`: `portable` asks for the portable loops, `avx2` for no
/// AVX-512 (to compare them on one machine).
static int kernels_requested(const char *value) {
  const char *setting = getenv("SHOAL_KERNELS");
  return setting && strcmp(setting, value) == 0;
}

int shoal_kernels_have_avx2(void) {
  static int known = -1;
  if (known < 0) {
    __builtin_cpu_init();
    known = !kernels_requested("portable") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return known;
}

/// Eight outputs from i on; `mask` keeps the lanes to load and store (all of them but at the end
/// of a row shorter than eight). With `store_all`, all eight are stored even so: for a short row
/// whose next one is written after it, the extra lanes are written over again (a masked store
/// costs several times a plain one on AMD's cores).
__attribute__((target("avx2,fma"), always_inline)) static inline void depthwise3x3_block(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const __m256 *w, __m256 bias,
    __m256 low, __m256 high, float *out, long i, __m256i mask, int store_all) {
  __m256 sum = _mm256_mul_ps(w[0], _mm256_maskload_ps(row0 + i, mask));
  sum = _mm256_fmadd_ps(w[1], _mm256_maskload_ps(row0 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[2], _mm256_maskload_ps(row0 + i + tap2, mask), sum);
  sum = _mm256_fmadd_ps(w[3], _mm256_maskload_ps(row1 + i, mask), sum);
  sum = _mm256_fmadd_ps(w[4], _mm256_maskload_ps(row1 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[5], _mm256_maskload_ps(row1 + i + tap2, mask), sum);
  sum = _mm256_fmadd_ps(w[6], _mm256_maskload_ps(row2 + i, mask), sum);
  sum = _mm256_fmadd_ps(w[7], _mm256_maskload_ps(row2 + i + tap1, mask), sum);
  sum = _mm256_fmadd_ps(w[8], _mm256_maskload_ps(row2 + i + tap2, mask), sum);
  // The bias, then the bounds; NaN passes both (the second operand wins).
  sum = _mm256_min_ps(high, _mm256_max_ps(low, _mm256_add_ps(sum, bias)));
  if (store_all) {
    _mm256_storeu_ps(out + i, sum);
  } else {
    _mm256_maskstore_ps(out + i, mask, sum);
  }
}

/// One output row of `count`; `more` is how many outputs after the row may be written over
/// (they are written again later).
__attribute__((target("avx2,fma"))) static void depthwise3x3_row_avx2(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *weights, float bias,
    float low, float high, float *out, long count, long more) {
  __m256 w[9];
  for (int k = 0; k < 9; k++) w[k] = _mm256_set1_ps(weights[k]);
  const __m256 b = _mm256_set1_ps(bias), lo = _mm256_set1_ps(low), hi = _mm256_set1_ps(high);
  const __m256i all = _mm256_set1_epi32(-1);
  if (count < 8) {
    // Lanes 0..<count only.
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lanes);
    depthwise3x3_block(row0, row1, row2, tap1, tap2, w, b, lo, hi, out, 0, mask, count + more >= 8);
    return;
  }
  long i = 0;
  for (; i + 8 <= count; i += 8) depthwise3x3_block(row0, row1, row2, tap1, tap2, w, b, lo, hi, out, i, all, 1);
  // The rest as a block of eight overlapping the one before (it writes the same values again).
  if (i < count) depthwise3x3_block(row0, row1, row2, tap1, tap2, w, b, lo, hi, out, count - 8, all, 1);
}

static void depthwise3x3_row_portable(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *w, float bias,
    float low, float high, float *out, long count) {
  for (long i = 0; i < count; i++) {
    float a = w[0] * row0[i] + w[1] * row0[i + tap1] + w[2] * row0[i + tap2];
    float b = w[3] * row1[i] + w[4] * row1[i + tap1] + w[5] * row1[i + tap2];
    float c = w[6] * row2[i] + w[7] * row2[i + tap1] + w[8] * row2[i + tap2];
    float value = a + b + c + bias;
    // Comparisons are false for NaN, so NaN passes through.
    value = value < low ? low : value;
    out[i] = value > high ? high : value;
  }
}

void shoal_depthwise3x3_plane(
    const float *padded, long row_length, long row_step, long tap1, long tap2, const float *weights, float bias,
    float low, float high, float *out, long out_height, long out_width) {
  int vector = shoal_kernels_have_avx2();
  for (long oh = 0; oh < out_height; oh++) {
    const float *r0 = padded + oh * row_step;
    if (vector) {
      // A row's extra lanes may spill into the next row, which is written after it.
      depthwise3x3_row_avx2(
          r0, r0 + row_length, r0 + 2 * row_length, tap1, tap2, weights, bias, low, high, out + oh * out_width,
          out_width, (out_height - 1 - oh) * out_width);
    } else {
      depthwise3x3_row_portable(
          r0, r0 + row_length, r0 + 2 * row_length, tap1, tap2, weights, bias, low, high, out + oh * out_width,
          out_width);
    }
  }
}

int shoal_kernels_have_avx512(void) {
  static int known = -1;
  if (known < 0) {
    __builtin_cpu_init();
    known = !kernels_requested("portable") && !kernels_requested("avx2") && __builtin_cpu_supports("avx512f");
  }
  return known;
}

long shoal_depthwise3x3_blocks(long out_h, long out_w) { return (out_h * out_w + 15) / 16; }

void shoal_depthwise3x3_prepare(long height, long width, long p_h, long p_w, struct shoal_depthwise_block *blocks) {
  long size = height * width, count = shoal_depthwise3x3_blocks(height, width);
  for (long v = 0; v < count; v++) {
    struct shoal_depthwise_block *block = blocks + v;
    // Output p's window starts at input p − p_h · width − p_w (the plane keeps its size).
    block->start = 16 * v - p_h * width - p_w;
    for (int t = 0; t < 9; t++) block->taps[t] = 0;
    for (int lane = 0; lane < 16 && 16 * v + lane < size; lane++) {
      long p = 16 * v + lane, ih = p / width - p_h, iw = p % width - p_w;
      for (int kh = 0; kh < 3; kh++) {
        for (int kw = 0; kw < 3; kw++) {
          if (ih + kh >= 0 && ih + kh < height && iw + kw >= 0 && iw + kw < width) {
            block->taps[3 * kh + kw] |= (unsigned short)(1u << lane);
          }
        }
      }
    }
    block->outputs = (unsigned short)(size - 16 * v >= 16 ? 0xFFFF : (1u << (size - 16 * v)) - 1);
  }
}

__attribute__((target("avx512f"))) void shoal_depthwise3x3_flat(
    const float *in, long width, const struct shoal_depthwise_block *blocks, long count, const float *weights,
    float bias, float low, float high, float *out) {
  __m512 w[9];
  for (int t = 0; t < 9; t++) w[t] = _mm512_set1_ps(weights[t]);
  const __m512 b = _mm512_set1_ps(bias), lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
  const long offset[9] = {0, 1, 2, width, width + 1, width + 2, 2 * width, 2 * width + 1, 2 * width + 2};
  for (long v = 0; v < count; v++) {
    const struct shoal_depthwise_block *block = blocks + v;
    // The 16 windows start side by side; lanes whose tap falls in the padding are masked off.
    const float *base = in + block->start;
    __m512 sum = _mm512_setzero_ps();
    for (int t = 0; t < 9; t++) {
      sum = _mm512_fmadd_ps(w[t], _mm512_maskz_loadu_ps(block->taps[t], base + offset[t]), sum);
    }
    // The bias, then the bounds; NaN passes both (the second operand wins).
    sum = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_add_ps(sum, b)));
    _mm512_mask_storeu_ps(out + 16 * v, block->outputs, sum);
  }
}

void shoal_pack_panels(const float *a, long rows, long depth, float *packed) {
  long panels = (rows + SHOAL_PANEL_ROWS - 1) / SHOAL_PANEL_ROWS;
  for (long p = 0; p < panels; p++) {
    float *panel = packed + p * depth * SHOAL_PANEL_ROWS;
    for (long r = 0; r < SHOAL_PANEL_ROWS; r++) {
      long row = p * SHOAL_PANEL_ROWS + r;
      for (long k = 0; k < depth; k++) panel[k * SHOAL_PANEL_ROWS + r] = row < rows ? a[row * depth + k] : 0;
    }
  }
}

static void pack_tile_rows(
    const float *b, long depth, long columns, long ldb, long first_tile, long end_tile, float *packed) {
  for (long t = first_tile; t < end_tile; t++) {
    long start = t * SHOAL_TILE_COLUMNS;
    long width = columns - start < SHOAL_TILE_COLUMNS ? columns - start : SHOAL_TILE_COLUMNS;
    float *tile = packed + start * depth;
    const float *source = b + start;
    for (long k = 0; k < depth; k++) {
      for (long j = 0; j < width; j++) tile[k * width + j] = source[k * ldb + j];
    }
  }
}

_Static_assert(SHOAL_TILE_COLUMNS == 12, "pack_full_tiles_avx2 moves a tile's row as 8 + 4 floats");

/// Full tiles 12 floats at a time (8 + 4).
__attribute__((target("avx2"))) static void pack_full_tiles_avx2(
    const float *b, long depth, long ldb, long first_tile, long end_tile, float *packed) {
  for (long t = first_tile; t < end_tile; t++) {
    long start = t * SHOAL_TILE_COLUMNS;
    float *to = packed + start * depth;
    const float *from = b + start;
    for (long k = 0; k < depth; k++) {
      _mm256_storeu_ps(to + k * SHOAL_TILE_COLUMNS, _mm256_loadu_ps(from + k * ldb));
      _mm_storeu_ps(to + k * SHOAL_TILE_COLUMNS + 8, _mm_loadu_ps(from + k * ldb + 8));
    }
  }
}

void shoal_pack_tiles(const float *b, long depth, long columns, long ldb, long first_tile, long end_tile, float *packed) {
  long full = columns / SHOAL_TILE_COLUMNS;
  long full_end = end_tile < full ? end_tile : full;
  if (shoal_kernels_have_avx2() && first_tile < full_end) {
    pack_full_tiles_avx2(b, depth, ldb, first_tile, full_end, packed);
    first_tile = full_end;
  }
  pack_tile_rows(b, depth, columns, ldb, first_tile, end_tile, packed);
}

/// Transposes the 16 × 16 floats of `v` in place: lane i of vector j becomes lane j of vector i.
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512 v[16]) {
  __m512 t[16];
  // Pairs of vectors interleaved 1 float at a time, then 2, then 4 (128-bit lanes), then 8.
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    v[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    v[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    v[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int i = 0; i < 16; i += 8) {
    for (int q = 0; q < 4; q++) {
      t[i + q] = _mm512_shuffle_f32x4(v[i + q], v[i + q + 4], 0x88);
      t[i + q + 4] = _mm512_shuffle_f32x4(v[i + q], v[i + q + 4], 0xDD);
    }
  }
  for (int q = 0; q < 8; q++) {
    v[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
    v[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xDD);
  }
}

/// One panel of 32 rows × `WIDTH` columns: the 32 rows' sums run in two 16-wide registers per
/// column, each step of k loading the panel's 32 weights once and broadcasting the tile's
/// `WIDTH` values. The sums go out through a small transposing buffer, with the bias added and,
/// if asked, negative values set to 0.
__attribute__((target("avx512f"), always_inline)) static inline void panel_tile(
    const int WIDTH, long depth, const float *a, const float *b, float *c, long ldc, long rows, const float *bias,
    const float *residual, int relu) {
  __m512 sum[SHOAL_TILE_COLUMNS][2];
  for (int j = 0; j < WIDTH; j++) sum[j][0] = sum[j][1] = _mm512_setzero_ps();
  for (long k = 0; k < depth; k++) {
    __m512 a0 = _mm512_load_ps(a), a1 = _mm512_load_ps(a + 16);
    for (int j = 0; j < WIDTH; j++) {
      __m512 value = _mm512_set1_ps(b[j]);
      sum[j][0] = _mm512_fmadd_ps(a0, value, sum[j][0]);
      sum[j][1] = _mm512_fmadd_ps(a1, value, sum[j][1]);
    }
    a += SHOAL_PANEL_ROWS;
    b += WIDTH;
  }
  __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
  if (bias) {
    __mmask16 m0 = rows >= 16 ? 0xFFFF : (__mmask16)((1u << rows) - 1);
    __mmask16 m1 = rows >= 32 ? 0xFFFF : rows <= 16 ? 0 : (__mmask16)((1u << (rows - 16)) - 1);
    b0 = _mm512_maskz_loadu_ps(m0, bias);
    b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
  }
  // Each half of the panel (16 rows) is transposed in registers, so that a row's outputs
  // (and its residual) are one masked vector of WIDTH lanes.
  const __mmask16 columns = (__mmask16)((1u << WIDTH) - 1);
  for (int h = 0; h < 2 && 16 * h < rows; h++) {
    __m512 v[16];
    __m512 half_bias = h == 0 ? b0 : b1;
    for (int j = 0; j < 16; j++) v[j] = j < WIDTH ? _mm512_add_ps(sum[j][h], half_bias) : _mm512_setzero_ps();
    transpose16(v);
    long count = rows - 16 * h < 16 ? rows - 16 * h : 16;
    float *out = c + 16 * h * ldc;
    const float *add = residual ? residual + 16 * h * ldc : 0;
    for (long r = 0; r < count; r++) {
      __m512 value = v[r];
      if (add) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(columns, add + r * ldc));
      if (relu) value = _mm512_max_ps(_mm512_setzero_ps(), value);  // NaN stays NaN (the second operand wins)
      _mm512_mask_storeu_ps(out + r * ldc, columns, value);
    }
  }
}

__attribute__((target("avx512f"))) static void panel_tile_any(
    long width, long depth, const float *a, const float *b, float *c, long ldc, long rows, const float *bias,
    const float *residual, int relu) {
  switch (width) {
  case 1: panel_tile(1, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 2: panel_tile(2, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 3: panel_tile(3, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 4: panel_tile(4, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 5: panel_tile(5, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 6: panel_tile(6, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 7: panel_tile(7, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 8: panel_tile(8, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 9: panel_tile(9, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 10: panel_tile(10, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  case 11: panel_tile(11, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  default: panel_tile(12, depth, a, b, c, ldc, rows, bias, residual, relu); break;
  }
}

void shoal_gemm_panels(
    const float *packed_a, long rows, long depth, const float *packed_b, long columns, float *c, long ldc,
    const float *bias, const float *residual, int relu, long first, long end) {
  long tiles = (columns + SHOAL_TILE_COLUMNS - 1) / SHOAL_TILE_COLUMNS;
  for (long unit = first; unit < end; unit++) {
    long p = unit / tiles, t = unit % tiles;
    long start = t * SHOAL_TILE_COLUMNS, row = p * SHOAL_PANEL_ROWS;
    long width = columns - start < SHOAL_TILE_COLUMNS ? columns - start : SHOAL_TILE_COLUMNS;
    long count = rows - row < SHOAL_PANEL_ROWS ? rows - row : SHOAL_PANEL_ROWS;
    panel_tile_any(
        width, depth, packed_a + p * depth * SHOAL_PANEL_ROWS, packed_b + start * depth, c + row * ldc + start, ldc,
        count, bias ? bias + row : 0, residual ? residual + row * ldc + start : 0, relu);
  }
}

// Winograd F(2×2, 3×3) transforms, 8 tiles at a time (AVX2), in the order of operations the
// scalar loops use, so that both give the same floats.

/// Tile t's 4×4 input block starts at column 2t of the rows.
static void winograd_input_tiles_portable(const float *row0, long width, float *out, long matrix, long count) {
  for (long t = 0; t < count; t++) {
    const float *r[4] = {row0 + 2 * t, row0 + width + 2 * t, row0 + 2 * width + 2 * t, row0 + 3 * width + 2 * t};
    float v[4][4];
    for (int j = 0; j < 4; j++) {
      v[0][j] = r[0][j] - r[2][j];
      v[1][j] = r[1][j] + r[2][j];
      v[2][j] = r[2][j] - r[1][j];
      v[3][j] = r[1][j] - r[3][j];
    }
    for (int i = 0; i < 4; i++) {
      float *base = out + t + i * 4 * matrix;
      base[0] = v[i][0] - v[i][2];
      base[matrix] = v[i][1] + v[i][2];
      base[2 * matrix] = v[i][2] - v[i][1];
      base[3 * matrix] = v[i][1] - v[i][3];
    }
  }
}

/// Columns x, x + 2, …, x + 14 and x + 1, x + 3, …, x + 15 of a row.
__attribute__((target("avx2"), always_inline)) static inline void even_odd(const float *x, __m256 *even, __m256 *odd) {
  __m256 a = _mm256_loadu_ps(x), b = _mm256_loadu_ps(x + 8);
  // Within each 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6; the 64-bit permutation puts them in order.
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

__attribute__((target("avx2"), always_inline)) static inline void winograd_input_block(
    const float *row0, long width, float *out, long matrix, long t) {
  __m256 d[4][4];
  for (int r = 0; r < 4; r++) {
    const float *x = row0 + r * width + 2 * t;
    even_odd(x, &d[r][0], &d[r][1]);
    even_odd(x + 2, &d[r][2], &d[r][3]);
  }
  __m256 v[4][4];
  for (int j = 0; j < 4; j++) {
    v[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
    v[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
    v[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
    v[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
  }
  for (int i = 0; i < 4; i++) {
    float *base = out + t + i * 4 * matrix;
    _mm256_storeu_ps(base, _mm256_sub_ps(v[i][0], v[i][2]));
    _mm256_storeu_ps(base + matrix, _mm256_add_ps(v[i][1], v[i][2]));
    _mm256_storeu_ps(base + 2 * matrix, _mm256_sub_ps(v[i][2], v[i][1]));
    _mm256_storeu_ps(base + 3 * matrix, _mm256_sub_ps(v[i][1], v[i][3]));
  }
}

__attribute__((target("avx2"))) static void winograd_input_tiles_avx2(
    const float *row0, long width, float *out, long matrix, long count) {
  long t = 0;
  for (; t + 8 <= count; t += 8) winograd_input_block(row0, width, out, matrix, t);
  // The rest as a block overlapping the one before (it writes the same values again).
  if (t < count) winograd_input_block(row0, width, out, matrix, count - 8);
}

/// Fewer than 8 tiles (a 14×14 or 7×7 map has 7 or 4 a row): one block of 8 into a buffer of
/// its own, of which the first `count` tiles are kept.
__attribute__((target("avx2"))) static void winograd_input_few_tiles_avx2(
    const float *row0, long width, float *out, long matrix, long count) {
  float block[16 * 8];
  winograd_input_block(row0, width, block, 8, 0);
  for (long m = 0; m < 16; m++) {
    for (long t = 0; t < count; t++) out[m * matrix + t] = block[m * 8 + t];
  }
}

void shoal_winograd_input_tiles(const float *row0, long width, float *out, long matrix, long count) {
  if (count >= 8 && shoal_kernels_have_avx2()) {
    winograd_input_tiles_avx2(row0, width, out, matrix, count);
  } else if (count > 0 && shoal_kernels_have_avx2()) {
    winograd_input_few_tiles_avx2(row0, width, out, matrix, count);
  } else {
    winograd_input_tiles_portable(row0, width, out, matrix, count);
  }
}

static void winograd_output_tiles_portable(const float *m, long matrix, float *out, long out_width, long count) {
  for (long t = 0; t < count; t++) {
    float top[4], bottom[4];
    for (int j = 0; j < 4; j++) {
      float m0 = m[t + j * matrix], m1 = m[t + (4 + j) * matrix], m2 = m[t + (8 + j) * matrix];
      float m3 = m[t + (12 + j) * matrix];
      top[j] = m0 + m1 + m2;
      bottom[j] = m1 - m2 - m3;
    }
    float *line = out + 2 * t;
    line[0] = top[0] + top[1] + top[2];
    line[1] = top[1] - top[2] - top[3];
    line[out_width] = bottom[0] + bottom[1] + bottom[2];
    line[out_width + 1] = bottom[1] - bottom[2] - bottom[3];
  }
}

__attribute__((target("avx2"), always_inline)) static inline void winograd_output_block(
    const float *m, long matrix, float *out, long out_width, long t) {
  __m256 top[4], bottom[4];
  for (int j = 0; j < 4; j++) {
    __m256 m0 = _mm256_loadu_ps(m + t + j * matrix), m1 = _mm256_loadu_ps(m + t + (4 + j) * matrix);
    __m256 m2 = _mm256_loadu_ps(m + t + (8 + j) * matrix), m3 = _mm256_loadu_ps(m + t + (12 + j) * matrix);
    top[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    bottom[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  __m256 y00 = _mm256_add_ps(_mm256_add_ps(top[0], top[1]), top[2]);
  __m256 y01 = _mm256_sub_ps(_mm256_sub_ps(top[1], top[2]), top[3]);
  __m256 y10 = _mm256_add_ps(_mm256_add_ps(bottom[0], bottom[1]), bottom[2]);
  __m256 y11 = _mm256_sub_ps(_mm256_sub_ps(bottom[1], bottom[2]), bottom[3]);
  // Interleave each pair: the 2 × 8 outputs of a row, in order.
  __m256 lo = _mm256_unpacklo_ps(y00, y01), hi = _mm256_unpackhi_ps(y00, y01);
  _mm256_storeu_ps(out + 2 * t, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(out + 2 * t + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  lo = _mm256_unpacklo_ps(y10, y11);
  hi = _mm256_unpackhi_ps(y10, y11);
  _mm256_storeu_ps(out + out_width + 2 * t, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(out + out_width + 2 * t + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

__attribute__((target("avx2"))) static void winograd_output_tiles_avx2(
    const float *m, long matrix, float *out, long out_width, long count) {
  long t = 0;
  for (; t + 8 <= count; t += 8) winograd_output_block(m, matrix, out, out_width, t);
  if (t < count) winograd_output_block(m, matrix, out, out_width, count - 8);
}

void shoal_winograd_output_tiles(const float *m, long matrix, float *out, long out_width, long count) {
  if (count >= 8 && shoal_kernels_have_avx2()) {
    winograd_output_tiles_avx2(m, matrix, out, out_width, count);
  } else {
    winograd_output_tiles_portable(m, matrix, out, out_width, count);
  }
}

// Winograd F(4×4, 3×3) transforms on the points 0, 1/2, −1/2, 2, −2 (and ∞): in float32 their
// rounding errors are about half those of the points 0, ±1, ±2 (measured on random 3×3
// convolutions of 24 to 256 channels). Each one-dimensional transform is written once, for a
// float and for 8 floats (AVX2), in the same order of operations, so both give the same results.
//
// Bᵀ = [1   0     −4.25  0     1  0]     Aᵀ = [1  1      1      1  1   0]
//      [0  −2     −4     0.5   1  0]          [0  0.5   −0.5    2 −2   0]
//      [0   2     −4    −0.5   1  0]          [0  0.25   0.25   4  4   0]
//      [0  −0.5   −0.25  2     1  0]          [0  0.125 −0.125  8 −8   1]
//      [0   0.5   −0.25 −2     1  0]
//      [0   1      0    −4.25  0  1]

static inline void winograd4_input_line(const float d[6], float r[6]) {
  float s = d[4] - 4.0f * d[2], u = 0.5f * d[3] - 2.0f * d[1];
  float s2 = d[4] - 0.25f * d[2], u2 = 2.0f * d[3] - 0.5f * d[1];
  r[0] = (d[0] - 4.25f * d[2]) + d[4];
  r[1] = s + u;
  r[2] = s - u;
  r[3] = s2 + u2;
  r[4] = s2 - u2;
  r[5] = (d[1] - 4.25f * d[3]) + d[5];
}

static inline void winograd4_output_line(const float m[6], float y[4]) {
  float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], e = m[3] - m[4];
  y[0] = (m[0] + a) + c;
  y[1] = 0.5f * b + 2.0f * e;
  y[2] = 0.25f * a + 4.0f * c;
  y[3] = (0.125f * b + 8.0f * e) + m[5];
}

/// Tile t's 6×6 input block starts at column 4t of the rows.
static void winograd4_input_tiles_portable(const float *row0, long width, float *out, long matrix, long count) {
  for (long t = 0; t < count; t++) {
    float h[6][6];
    for (int r = 0; r < 6; r++) winograd4_input_line(row0 + r * width + 4 * t, h[r]);
    for (int k = 0; k < 6; k++) {
      float column[6] = {h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k]}, v[6];
      winograd4_input_line(column, v);
      for (int i = 0; i < 6; i++) out[(6 * i + k) * matrix + t] = v[i];
    }
  }
}

#define WINOGRAD4_AVX2 __attribute__((target("avx2"), always_inline)) static inline

WINOGRAD4_AVX2 void winograd4_input_line_avx2(const __m256 d[6], __m256 r[6]) {
  __m256 s = _mm256_sub_ps(d[4], _mm256_mul_ps(_mm256_set1_ps(4.0f), d[2]));
  __m256 u = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), d[3]), _mm256_mul_ps(_mm256_set1_ps(2.0f), d[1]));
  __m256 s2 = _mm256_sub_ps(d[4], _mm256_mul_ps(_mm256_set1_ps(0.25f), d[2]));
  __m256 u2 = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), d[3]), _mm256_mul_ps(_mm256_set1_ps(0.5f), d[1]));
  r[0] = _mm256_add_ps(_mm256_sub_ps(d[0], _mm256_mul_ps(_mm256_set1_ps(4.25f), d[2])), d[4]);
  r[1] = _mm256_add_ps(s, u);
  r[2] = _mm256_sub_ps(s, u);
  r[3] = _mm256_add_ps(s2, u2);
  r[4] = _mm256_sub_ps(s2, u2);
  r[5] = _mm256_add_ps(_mm256_sub_ps(d[1], _mm256_mul_ps(_mm256_set1_ps(4.25f), d[3])), d[5]);
}

WINOGRAD4_AVX2 void winograd4_output_line_avx2(const __m256 m[6], __m256 y[4]) {
  __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
  __m256 c = _mm256_add_ps(m[3], m[4]), e = _mm256_sub_ps(m[3], m[4]);
  y[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
  y[1] = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), b), _mm256_mul_ps(_mm256_set1_ps(2.0f), e));
  y[2] = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.25f), a), _mm256_mul_ps(_mm256_set1_ps(4.0f), c));
  y[3] = _mm256_add_ps(
      _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.125f), b), _mm256_mul_ps(_mm256_set1_ps(8.0f), e)), m[5]);
}

/// The 4 × 4 transpose within each 128-bit half of four vectors (its own inverse).
WINOGRAD4_AVX2 void transpose4_halves(__m256 v[4]) {
  __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  v[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  v[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  v[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  v[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/// Lane t of v[j] becomes x[4t + j], for the 32 floats from x.
WINOGRAD4_AVX2 void columns_of_four(const float *x, __m256 v[4]) {
  for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
  // Half h of vector k holds tile 2k + h: after the transpose, v[j] holds column j of tiles
  // 0, 2, 4, 6 | 1, 3, 5, 7.
  transpose4_halves(v);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int j = 0; j < 4; j++) v[j] = _mm256_permutevar8x32_ps(v[j], order);
}

/// The lanes below `count` (at most 8) set.
WINOGRAD4_AVX2 __m256i first_lanes(long count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// The inverse of `columns_of_four`: x[4t + j] = lane t of v[j], for the first `count` of the
/// 32 floats from x.
WINOGRAD4_AVX2 void store_columns_of_four(__m256 v[4], float *x, long count) {
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int j = 0; j < 4; j++) v[j] = _mm256_permutevar8x32_ps(v[j], order);
  transpose4_halves(v);
  for (int k = 0; k < 4 && 8 * k < count; k++) {
    if (count >= 8 * k + 8) {
      _mm256_storeu_ps(x + 8 * k, v[k]);
    } else {
      _mm256_maskstore_ps(x + 8 * k, first_lanes(count - 8 * k), v[k]);
    }
  }
}

/// Tiles t..t + 7 (8 lanes), of which the first `lanes` are stored; reads 36 floats from column
/// 4t of each of the 6 rows.
WINOGRAD4_AVX2 void winograd4_input_block(
    const float *row0, long width, float *out, long matrix, long t, long lanes) {
  __m256 h[6][6];
  for (int r = 0; r < 6; r++) {
    const float *x = row0 + r * width + 4 * t;
    __m256 d[6], shifted[4];
    columns_of_four(x, d);
    columns_of_four(x + 4, shifted);
    d[4] = shifted[0];
    d[5] = shifted[1];
    winograd4_input_line_avx2(d, h[r]);
  }
  for (int k = 0; k < 6; k++) {
    __m256 column[6] = {h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k]}, v[6];
    winograd4_input_line_avx2(column, v);
    for (int i = 0; i < 6; i++) {
      if (lanes == 8) {
        _mm256_storeu_ps(out + (6 * i + k) * matrix + t, v[i]);
      } else {
        _mm256_maskstore_ps(out + (6 * i + k) * matrix + t, first_lanes(lanes), v[i]);
      }
    }
  }
}

__attribute__((target("avx2"))) static void winograd4_input_tiles_avx2(
    const float *row0, long width, float *out, long matrix, long count) {
  if (count < 8) {
    // Fewer than 8 tiles (a 28×28 map has 7 a row): one block, of which `count` lanes are stored.
    winograd4_input_block(row0, width, out, matrix, 0, count);
    return;
  }
  long t = 0;
  for (; t + 8 <= count; t += 8) winograd4_input_block(row0, width, out, matrix, t, 8);
  // The rest as a block overlapping the one before (it writes the same values again).
  if (t < count) winograd4_input_block(row0, width, out, matrix, count - 8, 8);
}

// The same blocks with AVX-512's two-source permutations, which pick a row's columns 4t + j
// of 8 tiles in one instruction (6 for a row's six columns, against 24 shuffles and
// permutations above), and its masked stores: the input transform of a 28×28 map's 128
// channels took 50 µs on one core, against 123–142 µs with AVX2.
#define WINOGRAD4_AVX512 __attribute__((target("avx512f,avx512vl"), always_inline)) static inline

/// AVX-512 with its 256-bit forms (every AVX-512 CPU but the Xeon Phi).
static int have_avx512vl(void) {
  static int known = -1;
  if (known < 0) {
    __builtin_cpu_init();
    known = shoal_kernels_have_avx512() && __builtin_cpu_supports("avx512vl");
  }
  return known;
}

WINOGRAD4_AVX512 void winograd4_input_block_avx512(
    const float *row0, long width, float *out, long matrix, long t, long lanes) {
  const __m512i column[4] = {
      _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
      _mm512_setr_epi32(1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0),
      _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0),
      _mm512_setr_epi32(3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0),
  };
  const __mmask8 keep = (__mmask8)((1u << lanes) - 1);
  __m256 h[6][6];
  for (int r = 0; r < 6; r++) {
    const float *x = row0 + r * width + 4 * t;
    __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
    __m512 lo4 = _mm512_loadu_ps(x + 4), hi4 = _mm512_loadu_ps(x + 20);
    __m256 d[6];
    for (int j = 0; j < 4; j++) d[j] = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo, column[j], hi));
    d[4] = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo4, column[0], hi4));
    d[5] = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo4, column[1], hi4));
    winograd4_input_line_avx2(d, h[r]);
  }
  for (int k = 0; k < 6; k++) {
    __m256 c[6] = {h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k]}, v[6];
    winograd4_input_line_avx2(c, v);
    for (int i = 0; i < 6; i++) _mm256_mask_storeu_ps(out + (6 * i + k) * matrix + t, keep, v[i]);
  }
}

__attribute__((target("avx512f,avx512vl"))) static void winograd4_input_tiles_avx512(
    const float *row0, long width, float *out, long matrix, long count) {
  long t = 0;
  for (; t + 8 <= count; t += 8) winograd4_input_block_avx512(row0, width, out, matrix, t, 8);
  if (t < count) winograd4_input_block_avx512(row0, width, out, matrix, t, count - t);
}

void shoal_winograd4_input_tiles(const float *row0, long width, float *out, long matrix, long count) {
  if (count > 0 && have_avx512vl()) {
    winograd4_input_tiles_avx512(row0, width, out, matrix, count);
  } else if (count > 0 && shoal_kernels_have_avx2()) {
    winograd4_input_tiles_avx2(row0, width, out, matrix, count);
  } else {
    winograd4_input_tiles_portable(row0, width, out, matrix, count);
  }
}

/// Tile t's 4×4 outputs into `tile` (4 rows of 4).
static void winograd4_output_tile_portable(const float *m, long matrix, long t, float tile[4][4]) {
  float v[4][6];
  for (int j = 0; j < 6; j++) {
    float column[6], y[4];
    for (int i = 0; i < 6; i++) column[i] = m[(6 * i + j) * matrix + t];
    winograd4_output_line(column, y);
    for (int i = 0; i < 4; i++) v[i][j] = y[i];
  }
  for (int i = 0; i < 4; i++) winograd4_output_line(v[i], tile[i]);
}

/// Aᵀ m for tiles t..t + 7: v[i][j] is row i of the products' column j.
WINOGRAD4_AVX2 void winograd4_output_columns(const float *m, long matrix, long t, __m256 v[4][6]) {
  for (int j = 0; j < 6; j++) {
    __m256 column[6], y[4];
    for (int i = 0; i < 6; i++) column[i] = _mm256_loadu_ps(m + (6 * i + j) * matrix + t);
    winograd4_output_line_avx2(column, y);
    for (int i = 0; i < 4; i++) v[i][j] = y[i];
  }
}

/// Tiles t..t + 7: the first `columns` (at most 32) of row i of their outputs, for the first
/// `out_rows` rows, to `rows + i · stride`.
WINOGRAD4_AVX2 void winograd4_output_block(
    const float *m, long matrix, long t, float *rows, long stride, long out_rows, long columns) {
  __m256 v[4][6];
  winograd4_output_columns(m, matrix, t, v);
  for (int i = 0; i < out_rows; i++) {
    __m256 y[4];
    winograd4_output_line_avx2(v[i], y);
    store_columns_of_four(y, rows + i * stride, columns);
  }
}

__attribute__((target("avx2"))) static void winograd4_output_tiles_avx2(
    const float *m, long matrix, float *out, long out_width, long out_rows, long count) {
  long whole = out_width / 4;  // tiles whose columns are all inside
  long t = 0;
  for (; t + 8 <= whole; t += 8) winograd4_output_block(m, matrix, t, out + 4 * t, out_width, out_rows, 32);
  if (t < whole && whole >= 8) {
    // The rest of the whole tiles as a block overlapping the one before.
    winograd4_output_block(m, matrix, whole - 8, out + 4 * (whole - 8), out_width, out_rows, 32);
    t = whole;
  }
  // A tile cut at the right edge, and rows of fewer than 8 tiles: blocks of 8 (reading past the
  // last tile, so `matrix` must leave room), stored up to the edge.
  for (; t < count; t += 8) {
    long columns = out_width - 4 * t < 32 ? out_width - 4 * t : 32;
    winograd4_output_block(m, matrix, t, out + 4 * t, out_width, out_rows, columns);
  }
}

/// `low` in lanes 0–7 and `high` in lanes 8–15.
WINOGRAD4_AVX512 __m512 pair_of_halves(__m256 low, __m256 high) {
  __m512d wide = _mm512_castpd256_pd512(_mm256_castps_pd(low));
  return _mm512_castpd_ps(_mm512_insertf64x4(wide, _mm256_castps_pd(high), 1));
}

/// Tiles t..t + 7 as `winograd4_output_block`, the rows interleaved with two-source
/// permutations and stored with masks up to `columns`.
WINOGRAD4_AVX512 void winograd4_output_block_avx512(
    const float *m, long matrix, long t, float *rows, long stride, long out_rows, long columns) {
  // Output 4t + c of a row is lane t of y[c]: y[0] and y[1] are one source, y[2] and y[3] the other.
  const __m512i first = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
  const __m512i second = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
  const __mmask16 keep0 = columns >= 16 ? 0xFFFF : (__mmask16)((1u << columns) - 1);
  const __mmask16 keep1 = columns >= 32 ? 0xFFFF : columns <= 16 ? 0 : (__mmask16)((1u << (columns - 16)) - 1);
  __m256 v[4][6];
  winograd4_output_columns(m, matrix, t, v);
  for (int i = 0; i < out_rows; i++) {
    __m256 y[4];
    winograd4_output_line_avx2(v[i], y);
    __m512 a = pair_of_halves(y[0], y[1]), b = pair_of_halves(y[2], y[3]);
    float *x = rows + i * stride;
    _mm512_mask_storeu_ps(x, keep0, _mm512_permutex2var_ps(a, first, b));
    if (keep1) _mm512_mask_storeu_ps(x + 16, keep1, _mm512_permutex2var_ps(a, second, b));
  }
}

__attribute__((target("avx512f,avx512vl"))) static void winograd4_output_tiles_avx512(
    const float *m, long matrix, float *out, long out_width, long out_rows, long count) {
  for (long t = 0; t < count; t += 8) {
    long columns = out_width - 4 * t < 32 ? out_width - 4 * t : 32;
    winograd4_output_block_avx512(m, matrix, t, out + 4 * t, out_width, out_rows, columns);
  }
}

void shoal_winograd4_output_tiles(
    const float *m, long matrix, float *out, long out_width, long out_rows, long count) {
  if (have_avx512vl()) {
    winograd4_output_tiles_avx512(m, matrix, out, out_width, out_rows, count);
    return;
  }
  if (shoal_kernels_have_avx2()) {
    winograd4_output_tiles_avx2(m, matrix, out, out_width, out_rows, count);
    return;
  }
  for (long t = 0; t < count; t++) {
    float tile[4][4];
    winograd4_output_tile_portable(m, matrix, t, tile);
    long columns = out_width - 4 * t < 4 ? out_width - 4 * t : 4;
    for (long i = 0; i < out_rows; i++) memcpy(out + i * out_width + 4 * t, tile[i], (size_t)columns * sizeof(float));
  }
}

/// The 32 columns of C (and of the residual, if any) that the next tile writes, for
/// `rows8_tile` to fetch into the cache while it computes.
struct next_tile {
  float *c;
  const float *residual;
  long rows;
};

/// Eight rows × 32 columns of C over the whole depth: the rows' weights broadcast from their
/// panel (32 rows side by side per step of k), two 16-wide loads of packed B per step. The
/// outputs get the bias, the residual (same layout as C) and a ReLU if asked, and are written
/// once; `m0` and `m1` keep the columns that exist.
///
/// The rows of C lie `ldc` apart, so each row of a tile is a cache miss of its own when C (or
/// the residual) is not in the cache, which the hardware prefetcher does not foresee: the first
/// steps of k fetch the next tile's rows, one row per step, so that they have arrived when its
/// outputs are written.
__attribute__((target("avx512f"), always_inline)) static inline void rows8_tile_of(
    const int HALVES, long depth, const float *a, const float *b, float *c, long ldc, long rows, __mmask16 m0,
    __mmask16 m1, const float *bias, const float *residual, int relu, struct next_tile next) {
  __m512 sum[8][2];
  for (int r = 0; r < 8; r++) sum[r][0] = sum[r][1] = _mm512_setzero_ps();
  for (long k = 0; k < depth; k++) {
    __m512 b0 = _mm512_load_ps(b), b1 = HALVES == 2 ? _mm512_load_ps(b + 16) : b0;
    for (int r = 0; r < 8; r++) {
      __m512 weight = _mm512_set1_ps(a[r]);
      sum[r][0] = _mm512_fmadd_ps(weight, b0, sum[r][0]);
      if (HALVES == 2) sum[r][1] = _mm512_fmadd_ps(weight, b1, sum[r][1]);
    }
    if (k < next.rows) {
      _m_prefetchw(next.c + k * ldc);
      _m_prefetchw(next.c + k * ldc + 16);
      if (next.residual) {
        _mm_prefetch((const char *)(next.residual + k * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(next.residual + k * ldc + 16), _MM_HINT_T0);
      }
    }
    a += SHOAL_PANEL_ROWS;
    b += 32;
  }
  for (long r = 0; r < rows; r++) {
    __m512 s0 = sum[r][0], s1 = sum[r][1];
    if (bias) {
      __m512 value = _mm512_set1_ps(bias[r]);
      s0 = _mm512_add_ps(s0, value);
      s1 = _mm512_add_ps(s1, value);
    }
    if (residual) {
      s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, residual + r * ldc));
      if (HALVES == 2) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, residual + r * ldc + 16));
    }
    if (relu) {
      s0 = _mm512_max_ps(_mm512_setzero_ps(), s0);  // NaN stays NaN (the second operand wins)
      s1 = _mm512_max_ps(_mm512_setzero_ps(), s1);
    }
    _mm512_mask_storeu_ps(c + r * ldc, m0, s0);
    if (HALVES == 2) _mm512_mask_storeu_ps(c + r * ldc + 16, m1, s1);
  }
}

__attribute__((target("avx512f"))) static void rows8_tile(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, __mmask16 m0, __mmask16 m1,
    const float *bias, const float *residual, int relu, struct next_tile next) {
  rows8_tile_of(2, depth, a, b, c, ldc, rows, m0, m1, bias, residual, relu, next);
}

/// `rows8_tile` for a block of at most 16 columns (the last of a range): half the sums.
__attribute__((target("avx512f"))) static void rows8_tile_16(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, __mmask16 m0, const float *bias,
    const float *residual, int relu, struct next_tile next) {
  rows8_tile_of(1, depth, a, b, c, ldc, rows, m0, 0, bias, residual, relu, next);
}

/// C's block of (up to) 32 columns from column `j` on, for all `rows` rows, from that block of B
/// packed [depth][32] in `pack`; `columns` is C's width, for the prefetch of the next block's
/// first tile.
__attribute__((target("avx512f"))) static void rows_block(
    const float *packed_a, long rows, long depth, const float *pack, long j, long columns, float *c, long ldc,
    const float *bias, const float *residual, int relu) {
  long width = columns - j < 32 ? columns - j : 32;
  __mmask16 m0 = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
  __mmask16 m1 = width >= 32 ? 0xFFFF : width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1);
  for (long r = 0; r < rows; r += 8) {
    long count = rows - r < 8 ? rows - r : 8;
    const float *a = packed_a + (r / SHOAL_PANEL_ROWS) * depth * SHOAL_PANEL_ROWS + r % SHOAL_PANEL_ROWS;
    // The tile below this one, or the first of the next columns.
    long next_row = r + 8 < rows ? r + 8 : 0, next_column = r + 8 < rows ? j : j + 32;
    struct next_tile next = {c + next_row * ldc + next_column, 0, 0};
    if (next_column < columns) {
      next.rows = rows - next_row < 8 ? rows - next_row : 8;
      if (residual) next.residual = residual + next_row * ldc + next_column;
    }
    if (width <= 16) {
      rows8_tile_16(
          depth, a, pack, c + r * ldc + j, ldc, count, m0, bias ? bias + r : 0, residual ? residual + r * ldc + j : 0,
          relu, next);
      continue;
    }
    rows8_tile(
        depth, a, pack, c + r * ldc + j, ldc, count, m0, m1, bias ? bias + r : 0,
        residual ? residual + r * ldc + j : 0, relu, next);
  }
}

__attribute__((target("avx512f"))) void shoal_gemm_rows(
    const float *packed_a, long rows, long depth, const float *b, long ldb, long columns, float *c, long ldc,
    const float *bias, const float *residual, int relu, float *pack) {
  for (long j = 0; j < columns; j += 32) {
    long width = columns - j < 32 ? columns - j : 32;
    __mmask16 m0 = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
    __mmask16 m1 = width >= 32 ? 0xFFFF : width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1);
    // B's rows lie `ldb` apart, each one a stream of its own that the hardware prefetcher does
    // not follow: fetch the next block's piece of each row while this one is packed, so that it
    // has arrived by the time all the row tiles below have been computed.
    int fetch_next = j + 32 < columns;
    for (long k = 0; k < depth; k++) {
      const float *row = b + k * ldb + j;
      _mm512_store_ps(pack + k * 32, _mm512_maskz_loadu_ps(m0, row));
      _mm512_store_ps(pack + k * 32 + 16, _mm512_maskz_loadu_ps(m1, row + 16));
      if (fetch_next) {
        _mm_prefetch((const char *)(row + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(row + 48), _MM_HINT_T0);
      }
    }
    rows_block(packed_a, rows, depth, pack, j, columns, c, ldc, bias, residual, relu);
  }
}

/// The lanes of an 8-wide vector that hold columns below `width` (AVX2 masked loads and stores).
__attribute__((target("avx2"), always_inline)) static inline __m256i lanes_below(long width) {
  long n = width < 0 ? 0 : width > 8 ? 8 : width;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// AVX2 and FMA: ROWS (6 or 4) rows × 16 columns of C over the whole depth in 2 · ROWS
/// registers, the rows' weights broadcast from their panel and two 8-wide loads of packed B
/// (a block of 32 columns, [depth][32]) per step of k. The outputs get the bias, the residual
/// and a ReLU if asked, and are written once; `rows` (at most ROWS) of them exist, and `width`
/// columns (at most 16).
__attribute__((target("avx2,fma"), always_inline)) static inline void rows_tile_avx2(
    const int ROWS, long depth, const float *a, const float *b, float *c, long ldc, long rows, long width,
    const float *bias, const float *residual, __m256 low, __m256 high, struct next_tile next) {
  // The next tile's lines are asked for first; they arrive while the sums are computed.
  for (long r = 0; r < next.rows; r++) {
    _mm_prefetch((const char *)(next.c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(next.c + r * ldc + 16), _MM_HINT_T0);
    if (next.residual) {
      _mm_prefetch((const char *)(next.residual + r * ldc), _MM_HINT_T0);
      _mm_prefetch((const char *)(next.residual + r * ldc + 16), _MM_HINT_T0);
    }
  }
  __m256 sum[6][2];
  for (int r = 0; r < ROWS; r++) sum[r][0] = sum[r][1] = _mm256_setzero_ps();
  for (long k = 0; k < depth; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    for (int r = 0; r < ROWS; r++) {
      __m256 weight = _mm256_broadcast_ss(a + r);
      sum[r][0] = _mm256_fmadd_ps(weight, b0, sum[r][0]);
      sum[r][1] = _mm256_fmadd_ps(weight, b1, sum[r][1]);
    }
    a += SHOAL_PANEL_ROWS;
    b += 32;
  }
  // Masked loads and stores only for a tile cut short: AMD's masked stores cost several times
  // a plain one.
  int full = width == 16;
  __m256i m0 = lanes_below(width), m1 = lanes_below(width - 8);
  for (long r = 0; r < rows; r++) {
    __m256 s0 = sum[r][0], s1 = sum[r][1];
    if (bias) {
      __m256 value = _mm256_broadcast_ss(bias + r);
      s0 = _mm256_add_ps(s0, value);
      s1 = _mm256_add_ps(s1, value);
    }
    if (residual && full) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(residual + r * ldc));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(residual + r * ldc + 8));
    } else if (residual) {
      s0 = _mm256_add_ps(s0, _mm256_maskload_ps(residual + r * ldc, m0));
      s1 = _mm256_add_ps(s1, _mm256_maskload_ps(residual + r * ldc + 8, m1));
    }
    // NaN passes both bounds (the second operand wins).
    s0 = _mm256_min_ps(high, _mm256_max_ps(low, s0));
    s1 = _mm256_min_ps(high, _mm256_max_ps(low, s1));
    if (full) {
      _mm256_storeu_ps(c + r * ldc, s0);
      _mm256_storeu_ps(c + r * ldc + 8, s1);
    } else {
      _mm256_maskstore_ps(c + r * ldc, m0, s0);
      _mm256_maskstore_ps(c + r * ldc + 8, m1, s1);
    }
  }
}

__attribute__((target("avx2,fma"))) static void rows6_tile_avx2(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long width, const float *bias,
    const float *residual, __m256 low, __m256 high, struct next_tile next) {
  rows_tile_avx2(6, depth, a, b, c, ldc, rows, width, bias, residual, low, high, next);
}

__attribute__((target("avx2,fma"))) static void rows4_tile_avx2(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long width, const float *bias,
    const float *residual, __m256 low, __m256 high, struct next_tile next) {
  rows_tile_avx2(4, depth, a, b, c, ldc, rows, width, bias, residual, low, high, next);
}

/// The height of row tile `t` of a panel in `shoal_gemm_rows_avx2`: 6, 6, 6, 6, 4 and 4 rows make
/// its 32, and none reaches past the panel's padding.
static inline long avx2_tile_height(int t) { return t < 4 ? 6 : 4; }

__attribute__((target("avx2,fma"))) void shoal_gemm_rows_avx2(
    const float *packed_a, long rows, long depth, const float *b, long ldb, long columns, float *c, long ldc,
    const float *bias, const float *residual, float lower, float upper, float *pack) {
  __m256 low = _mm256_set1_ps(lower), high = _mm256_set1_ps(upper);
  for (long j = 0; j < columns; j += 32) {
    long width = columns - j < 32 ? columns - j : 32;
    __m256i lanes[4];
    for (int q = 0; q < 4; q++) lanes[q] = lanes_below(width - 8 * q);
    for (long k = 0; k < depth; k++) {
      const float *row = b + k * ldb + j;
      if (width == 32) {
        for (int q = 0; q < 4; q++) _mm256_store_ps(pack + k * 32 + 8 * q, _mm256_loadu_ps(row + 8 * q));
        continue;
      }
      for (int q = 0; q < 4; q++) _mm256_store_ps(pack + k * 32 + 8 * q, _mm256_maskload_ps(row + 8 * q, lanes[q]));
    }
    long r = 0;
    int t = 0;
    while (r < rows) {
      long height = avx2_tile_height(t);
      long count = rows - r < height ? rows - r : height;
      const float *a = packed_a + (r / SHOAL_PANEL_ROWS) * depth * SHOAL_PANEL_ROWS + r % SHOAL_PANEL_ROWS;
      // The next row tile, or the first of the next block of columns.
      long next_row = r + height < rows ? r + height : 0, next_column = r + height < rows ? j : j + 32;
      struct next_tile next = {c + next_row * ldc + next_column, 0, 0};
      if (next_column < columns) {
        long next_height = r + height < rows ? avx2_tile_height((t + 1) % 6) : 6;
        next.rows = rows - next_row < next_height ? rows - next_row : next_height;
        if (residual) next.residual = residual + next_row * ldc + next_column;
      }
      struct next_tile none = {0, 0, 0};
      for (long half = 0; half < width; half += 16) {
        long cut = width - half < 16 ? width - half : 16;
        float *out = c + r * ldc + j + half;
        const float *more = residual ? residual + r * ldc + j + half : 0;
        struct next_tile fetch = half == 0 ? next : none;
        if (height == 6) {
          rows6_tile_avx2(depth, a, pack + half, out, ldc, count, cut, bias ? bias + r : 0, more, low, high, fetch);
        } else {
          rows4_tile_avx2(depth, a, pack + half, out, ldc, count, cut, bias ? bias + r : 0, more, low, high, fetch);
        }
      }
      r += height;
      t = (t + 1) % 6;
    }
  }
}

/// ⌈a / 2⌉ for either sign of a.
static inline long half_up(long a) { return a >= 0 ? (a + 1) / 2 : -((-a) / 2); }

/// The bits lo..<hi of a 64-bit mask (0 ≤ lo < hi ≤ 64).
static inline unsigned long long bit_range(long lo, long hi) {
  unsigned long long below_hi = hi >= 64 ? ~0ull : (1ull << hi) - 1;
  return below_hi & ~((1ull << lo) - 1);
}

/// Columns `first..<first + count` (count ≤ 32) of the convolution's unfolded input, row k =
/// (channel, kh, kw), packed into `pack` straight from the image, row k at `pack + k · step`:
/// with a step of 32 as whole 32-float rows (64-byte aligned; lanes past `count` zero), with
/// another step as `count` floats. Each kernel tap works out once, for all channels, where each
/// output row that the columns cross reads its input row (masks keep the lanes inside the
/// input); each step of k then fills two vectors with a masked load per such row (for stride
/// 2, two loads and a permutation keeping the even elements). Padding reads as zero.
__attribute__((target("avx512f"))) static void pack_conv_columns(
    const float *image, const struct shoal_conv2d *g, long first, long count, float *pack, long step) {
  // The output rows the columns cross: row oh, from column ow, lanes j..<j + length.
  long row_of[32], column_of[32], lane_of[32], length_of[32];
  int segments = 0;
  for (long j = 0; j < count; segments++) {
    long oh = (first + j) / g->out_w, ow = (first + j) % g->out_w;
    long length = g->out_w - ow < count - j ? g->out_w - ow : count - j;
    row_of[segments] = oh, column_of[segments] = ow, lane_of[segments] = j, length_of[segments] = length;
    j += length;
  }
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const long in_size = g->in_h * g->in_w, in_w = g->in_w, taps = g->k_h * g->k_w;
  for (long kh = 0; kh < g->k_h; kh++) {
    for (long kw = 0; kw < g->k_w; kw++) {
      // Per output row that reads inside the input: where lane 0 would read, relative to a
      // channel's plane, the lanes that read inside it and (stride 2) the elements loaded.
      long offset[32];
      unsigned long long lanes[32], elements[32];
      int reading = 0;
      for (int s = 0; s < segments; s++) {
        long ih = row_of[s] * g->s_h - g->p_h + kh * g->d_h;
        if (ih < 0 || ih >= g->in_h) continue;
        // Lane j (of lane0..<lane0 + length) reads input column iw0 + stride · (j − lane0).
        long iw0 = column_of[s] * g->s_w - g->p_w + kw * g->d_w, lane0 = lane_of[s], length = length_of[s];
        long skip = g->s_w == 1 ? -iw0 : half_up(-iw0), fit = g->s_w == 1 ? in_w - iw0 : half_up(in_w - iw0);
        long lo = lane0 + (skip > 0 ? skip : 0), hi = lane0 + (fit < length ? fit : length);
        if (lo >= hi) continue;
        offset[reading] = ih * in_w + iw0 - g->s_w * lane0;
        lanes[reading] = bit_range(lo, hi);
        // Lane j is element 2j; the odd elements between are loaded and dropped.
        elements[reading] = g->s_w == 1 ? 0 : bit_range(2 * lo, 2 * hi - 1);
        reading++;
      }
      float *to = pack + (kh * g->k_w + kw) * step;
      for (long channel = 0; channel < g->channels; channel++, to += taps * step) {
        const float *plane = image + channel * in_size;
        __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
        for (int s = 0; s < reading; s++) {
          const float *base = plane + offset[s];
          __mmask16 low_lanes = (__mmask16)lanes[s], high_lanes = (__mmask16)(lanes[s] >> 16);
          if (g->s_w == 1) {
            v0 = _mm512_mask_loadu_ps(v0, low_lanes, base);
            v1 = _mm512_mask_loadu_ps(v1, high_lanes, base + 16);
            continue;
          }
          if (low_lanes) {
            __m512 a = _mm512_maskz_loadu_ps((__mmask16)elements[s], base);
            __m512 b = _mm512_maskz_loadu_ps((__mmask16)(elements[s] >> 16), base + 16);
            v0 = _mm512_mask_mov_ps(v0, low_lanes, _mm512_permutex2var_ps(a, evens, b));
          }
          if (high_lanes) {
            __m512 a = _mm512_maskz_loadu_ps((__mmask16)(elements[s] >> 32), base + 32);
            __m512 b = _mm512_maskz_loadu_ps((__mmask16)(elements[s] >> 48), base + 48);
            v1 = _mm512_mask_mov_ps(v1, high_lanes, _mm512_permutex2var_ps(a, evens, b));
          }
        }
        if (step == 32) {
          _mm512_store_ps(to, v0);
          _mm512_store_ps(to + 16, v1);
        } else {
          _mm512_mask_storeu_ps(to, (__mmask16)bit_range(0, count), v0);
          if (count > 16) _mm512_mask_storeu_ps(to + 16, (__mmask16)bit_range(0, count - 16), v1);
        }
      }
    }
  }
}

__attribute__((target("avx512f"))) void shoal_conv_rows(
    const float *packed_a, long rows, const float *image, const struct shoal_conv2d *g, long first, long columns,
    float *c, long ldc, const float *bias, const float *residual, int relu, float *pack) {
  long depth = g->channels * g->k_h * g->k_w;
  for (long j = 0; j < columns; j += 32) {
    pack_conv_columns(image, g, first + j, columns - j < 32 ? columns - j : 32, pack, 32);
    rows_block(packed_a, rows, depth, pack, j, columns, c, ldc, bias, residual, relu);
  }
}

__attribute__((target("avx512f"))) void shoal_pack_conv_tiles(
    const float *image, const struct shoal_conv2d *g, long columns, long first_tile, long end_tile, float *packed) {
  long depth = g->channels * g->k_h * g->k_w;
  for (long t = first_tile; t < end_tile; t++) {
    long start = t * SHOAL_TILE_COLUMNS;
    long width = columns - start < SHOAL_TILE_COLUMNS ? columns - start : SHOAL_TILE_COLUMNS;
    pack_conv_columns(image, g, start, width, packed + start * depth, width);
  }
}

/// The larger of two values, NaN winning (either one).
static inline float max_nan(float best, float value) { return value > best || value != value ? value : best; }

__attribute__((target("avx2"), always_inline)) static inline __m256 max_nan8(__m256 best, __m256 value) {
  __m256 take = _mm256_or_ps(_mm256_cmp_ps(value, best, _CMP_GT_OQ), _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
  return _mm256_blendv_ps(best, value, take);
}

/// Output `ow`'s window of `row` one value at a time, leaving out columns outside 0..<width.
static inline float max_window(const float *row, long width, long ow, long kW, long sW, long pW) {
  float best = -__builtin_inff();
  for (long kw = 0; kw < kW; kw++) {
    long column = ow * sW - pW + kw;
    if (column >= 0 && column < width) best = max_nan(best, row[column]);
  }
  return best;
}

/// The input rows first..<end that output row oh's windows cover; 0 when none does, with the
/// output row set to −infinity.
static inline int window_rows(
    long oh, long sH, long pH, long kH, long inH, float *out, long outW, long *first, long *end) {
  long start = oh * sH - pH;
  *first = start > 0 ? start : 0;
  *end = start + kH < inH ? start + kH : inH;
  if (*first < *end) return 1;
  for (long ow = 0; ow < outW; ow++) out[ow] = -__builtin_inff();
  return 0;
}

__attribute__((target("avx2"))) static void max_pool_plane_avx2(
    const float *x, long inH, long inW, float *y, long first_row, long end_row, long outW, long kH, long kW, long sH,
    long sW, long pH, long pW, float *row) {
  // Outputs lo..<hi have their whole window inside the row.
  long lo = (pW + sW - 1) / sW < outW ? (pW + sW - 1) / sW : outW;
  long hi = inW - kW + pW < 0 ? lo : (inW - kW + pW) / sW + 1;
  if (hi > outW) hi = outW;
  if (hi < lo) hi = lo;
  for (long oh = first_row; oh < end_row; oh++) {
    float *out = y + oh * outW;
    long first, end;
    if (!window_rows(oh, sH, pH, kH, inH, out, outW, &first, &end)) continue;
    // The window's rows combined into `row`, 8 columns at a time.
    memcpy(row, x + first * inW, inW * sizeof(float));
    for (long ih = first + 1; ih < end; ih++) {
      const float *next = x + ih * inW;
      long i = 0;
      for (; i + 8 <= inW; i += 8) _mm256_storeu_ps(row + i, max_nan8(_mm256_loadu_ps(row + i), _mm256_loadu_ps(next + i)));
      for (; i < inW; i++) row[i] = max_nan(row[i], next[i]);
    }
    long ow = 0;
    for (; ow < lo; ow++) out[ow] = max_window(row, inW, ow, kW, sW, pW);
    // 8 windows at a time; for stride 2 the even lanes of 16 columns (one past the last window
    // is read: `row` has spare room).
    for (; ow + 8 <= hi; ow += 8) {
      __m256 best = _mm256_set1_ps(-__builtin_inff());
      for (long kw = 0; kw < kW; kw++) {
        const float *source = row + ow * sW - pW + kw;
        __m256 value;
        if (sW == 1) {
          value = _mm256_loadu_ps(source);
        } else {
          __m256 odd;
          even_odd(source, &value, &odd);
        }
        best = max_nan8(best, value);
      }
      _mm256_storeu_ps(out + ow, best);
    }
    for (; ow < outW; ow++) out[ow] = max_window(row, inW, ow, kW, sW, pW);
  }
}

/// `best` and `value` combined as `max_nan` does, 16 lanes at a time: max_ps returns its second
/// operand when either is NaN, which keeps a NaN `best`; a NaN `value` is put back after.
__attribute__((target("avx512f"), always_inline)) static inline __m512 max_nan16(__m512 best, __m512 value) {
  return _mm512_mask_mov_ps(_mm512_max_ps(value, best), _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q), value);
}

long shoal_max_pool_row_floats(long inW, long outW, long kW, long sW, long pW) {
  long last_block = (outW > 0 ? (outW - 1) / 16 : 0) * 16;
  long reach = sW * last_block + kW + 32, data = pW + inW;
  return (reach > data ? reach : data) + 16;
}

/// The window's rows are combined into `row` between −infinity borders (pW before, the rest
/// after), so that every window, also one reaching over an edge, is 16 vector lanes of the same
/// loads: −infinity changes no maximum and leaves a NaN a NaN.
__attribute__((target("avx512f"))) static void max_pool_plane_avx512(
    const float *x, long inH, long inW, float *y, long first_row, long end_row, long outW, long kH, long kW, long sH,
    long sW, long pH, long pW, float *row) {
  long floats = shoal_max_pool_row_floats(inW, outW, kW, sW, pW);
  const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
  for (long i = 0; i < pW; i++) row[i] = -__builtin_inff();
  for (long i = pW + inW; i < floats; i++) row[i] = -__builtin_inff();
  float *data = row + pW;
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (long oh = first_row; oh < end_row; oh++) {
    float *out = y + oh * outW;
    long first, end;
    if (!window_rows(oh, sH, pH, kH, inH, out, outW, &first, &end)) continue;
    for (long i = 0; i < inW; i += 16) {
      __mmask16 lanes = inW - i >= 16 ? 0xFFFF : (__mmask16)((1u << (inW - i)) - 1);
      __m512 best = _mm512_maskz_loadu_ps(lanes, x + first * inW + i);
      for (long ih = first + 1; ih < end; ih++) best = max_nan16(best, _mm512_maskz_loadu_ps(lanes, x + ih * inW + i));
      _mm512_mask_storeu_ps(data + i, lanes, best);
    }
    for (long ow = 0; ow < outW; ow += 16) {
      __mmask16 lanes = outW - ow >= 16 ? 0xFFFF : (__mmask16)((1u << (outW - ow)) - 1);
      const float *base = row + ow * sW;
      __m512 best = lowest;
      if (sW == 1) {
        for (long kw = 0; kw < kW; kw++) best = max_nan16(best, _mm512_loadu_ps(base + kw));
      } else {
        // Window tap kw of 16 outputs is every other float from base + kw: an even tap and the
        // odd one after it come from the same two loads.
        for (long kw = 0; kw < kW; kw += 2) {
          __m512 a = _mm512_loadu_ps(base + kw), b = _mm512_loadu_ps(base + kw + 16);
          best = max_nan16(best, _mm512_permutex2var_ps(a, evens, b));
          if (kw + 1 < kW) best = max_nan16(best, _mm512_permutex2var_ps(a, odds, b));
        }
      }
      _mm512_mask_storeu_ps(out + ow, lanes, best);
    }
  }
}

int shoal_max_pool_plane(
    const float *x, long inH, long inW, float *y, long first_row, long end_row, long outW, long kH, long kW, long sH,
    long sW, long pH, long pW, float *row) {
  if (sW < 1 || sW > 2) return 0;
  if (shoal_kernels_have_avx512()) {
    max_pool_plane_avx512(x, inH, inW, y, first_row, end_row, outW, kH, kW, sH, sW, pH, pW, row);
    return 1;
  }
  if (!shoal_kernels_have_avx2()) return 0;
  max_pool_plane_avx2(x, inH, inW, y, first_row, end_row, outW, kH, kW, sH, sW, pH, pW, row);
  return 1;
}
