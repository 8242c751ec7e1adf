// Kernels on images whose channels lie in blocks of 8: [channels / 8][positions][8], the 8
// channels of a position side by side (onnxruntime's NCHWc with c = 8). A vector then holds 8
// channels of one position, so depthwise and 1×1 layers fill every lane whatever the plane's
// width or stride. AVX2 and FMA only: callers check shoal_kernels_have_avx2().
#include <immintrin.h>

#include "model_kernels.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/// Transposes the 8 × 8 matrix held in r (row i in r[i]).
AVX2_INLINE void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

/// Moves blocks first_block..<end_block of one image between planes [channels][positions] and
/// channel blocks, 8 × 8 at a time through a transpose.
AVX2_INLINE void reorder_blocks(
    const float *x, long positions, long first_block, long end_block, float *y, int to_blocks) {
  // Element (c, p) of a block: c · positions + p in planes, p · 8 + c in blocks.
  const long from_step = to_blocks ? positions : 8, to_step = to_blocks ? 8 : positions;
  for (long block = first_block; block < end_block; block++) {
    const float *source = x + block * 8 * positions;
    float *target = y + block * 8 * positions;
    long p = 0;
    for (; p + 8 <= positions; p += 8) {
      // Row i of the 8 × 8 tile: channel i (to blocks) or position p + i (back).
      const float *from = source + (to_blocks ? p : p * 8);
      float *to = target + (to_blocks ? p * 8 : p);
      __m256 r[8];
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(from + i * from_step);
      transpose8(r);
      for (int i = 0; i < 8; i++) _mm256_storeu_ps(to + i * to_step, r[i]);
    }
    for (; p < positions; p++) {
      for (int c = 0; c < 8; c++) {
        if (to_blocks) {
          target[p * 8 + c] = source[c * positions + p];
        } else {
          target[c * positions + p] = source[p * 8 + c];
        }
      }
    }
  }
}

AVX2 void shoal_blocks_from_planes(const float *x, long positions, long first_block, long end_block, float *y) {
  reorder_blocks(x, positions, first_block, end_block, y, 1);
}

AVX2 void shoal_planes_from_blocks(const float *x, long positions, long first_block, long end_block, float *y) {
  reorder_blocks(x, positions, first_block, end_block, y, 0);
}

/// Bias, residual and bounds on one output vector, then its store. max/min with the value
/// second keep NaN.
AVX2_INLINE void finish_vector(
    float *y, __m256 sum, __m256 bias, const float *residual, __m256 lower, __m256 upper) {
  sum = _mm256_add_ps(sum, bias);
  if (residual) sum = _mm256_add_ps(sum, _mm256_loadu_ps(residual));
  sum = _mm256_max_ps(lower, sum);
  sum = _mm256_min_ps(upper, sum);
  _mm256_storeu_ps(y, sum);
}

/// The outputs of a tile of `count` positions × `wide` (1 or 2) output blocks, `step` floats
/// apart from one block to the next: sums a0 (block 0) and a1 (block 1), finished and stored.
AVX2_INLINE void store_tile(
    const __m256 a0[6], const __m256 a1[6], int wide, int count, float *y, long step, const float *bias,
    const float *residual, __m256 lower, __m256 upper) {
  for (int half = 0; half < wide; half++) {
    const __m256 *sums = half == 0 ? a0 : a1;
    const long at = half * step;
    __m256 b = bias ? _mm256_loadu_ps(bias + half * 8) : _mm256_setzero_ps();
    for (int r = 0; r < count; r++) {
      finish_vector(y + at + r * 8, sums[r], b, residual ? residual + at + r * 8 : 0, lower, upper);
    }
  }
}

/// `count` consecutive positions × `wide` (1 or 2) output blocks of a 1×1 convolution: x and y
/// (and residual) point at the tile's first position in input block 0 and output block `pair · 2`,
/// blocks `step` floats apart; w at the pair's packed weights [channels][wide · 8]. With
/// `prefetch`, each block's input 4 tiles ahead is asked for (see `shoal_pointwise_blocks`).
AVX2_INLINE void pointwise_tile(
    const float *w, long channels, int wide, const float *x, long step, int count, float *y, const float *bias,
    const float *residual, __m256 lower, __m256 upper, int prefetch) {
  __m256 a0[6], a1[6];
  for (int r = 0; r < count; r++) a0[r] = a1[r] = _mm256_setzero_ps();
  const long width = 8 * wide;
  for (long block = 0; block < channels / 8; block++) {
    const float *xb = x + block * step;
    const float *wb = w + block * 8 * width;
    if (prefetch) {
      for (int line = 0; line < 3; line++) _mm_prefetch((const char *)(xb + 4 * 48 + line * 16), _MM_HINT_T0);
    }
    for (int k = 0; k < 8; k++) {
      __m256 w0 = _mm256_loadu_ps(wb + k * width);
      __m256 w1 = wide == 2 ? _mm256_loadu_ps(wb + k * width + 8) : w0;
      for (int r = 0; r < count; r++) {
        __m256 v = _mm256_broadcast_ss(xb + r * 8 + k);
        a0[r] = _mm256_fmadd_ps(w0, v, a0[r]);
        if (wide == 2) a1[r] = _mm256_fmadd_ps(w1, v, a1[r]);
      }
    }
  }
  store_tile(a0, a1, wide, count, y, step, bias, residual, lower, upper);
}

#define POINTWISE_CASE(n, prefetch)                                                                 \
  case n:                                                                                           \
    if (wide == 2) {                                                                                \
      pointwise_tile(w, channels, 2, x, step, n, y, bias, residual, lower, upper, prefetch);        \
    } else {                                                                                        \
      pointwise_tile(w, channels, 1, x, step, n, y, bias, residual, lower, upper, prefetch);        \
    }                                                                                               \
    break;

/// `pointwise_tile` for any count and width, with `prefetch` fixed.
#define POINTWISE_TILE_ANY(name, prefetch)                                                            \
  AVX2 static void name(                                                                              \
      const float *w, long channels, int wide, const float *x, long step, int count, float *y,       \
      const float *bias, const float *residual, __m256 lower, __m256 upper) {                         \
    switch (count) {                                                                                  \
      POINTWISE_CASE(1, prefetch)                                                                     \
      POINTWISE_CASE(2, prefetch)                                                                     \
      POINTWISE_CASE(3, prefetch)                                                                     \
      POINTWISE_CASE(4, prefetch)                                                                     \
      POINTWISE_CASE(5, prefetch)                                                                     \
      POINTWISE_CASE(6, prefetch)                                                                     \
    }                                                                                                 \
  }

POINTWISE_TILE_ANY(pointwise_tile_any, 0)
POINTWISE_TILE_ANY(pointwise_tile_prefetching, 1)

void shoal_pack_pointwise_blocks(const float *w, long features, long channels, float *packed) {
  for (long pair = 0; pair * 16 < features; pair++) {
    long wide = features - pair * 16 >= 16 ? 16 : 8;
    float *target = packed + pair * 16 * channels;
    for (long c = 0; c < channels; c++) {
      for (long f = 0; f < wide; f++) target[c * wide + f] = w[(pair * 16 + f) * channels + c];
    }
  }
}

AVX2 void shoal_pointwise_blocks(
    const float *packed, long channels, long features, const float *x, long positions, long first, long end,
    long first_pair, long end_pair, float *y, const float *bias, const float *residual, float lower,
    float upper) {
  const __m256 low = _mm256_set1_ps(lower), high = _mm256_set1_ps(upper);
  const long step = positions * 8;
  // Deep inputs into few features (SqueezeNet's squeeze layers, MobileNet's 144 → 24) read many
  // blocks' streams for little arithmetic, more than the hardware prefetcher follows: asking for
  // each block's input 4 tiles ahead took 128 → 16 at 55 × 55 (8 images, one core, from memory)
  // from 1.26–1.40 to 1.04–1.06 ms and 144 → 24 at 56 × 56 from 2.39–2.67 to 2.20–2.26. With more
  // features it measured no faster, or slower (960 → 160 at 7 × 7).
  const int prefetch = channels >= 128 && features <= 32;
  // Pairs in groups whose weights stay in L2 (about 128 KiB) while a group's tiles run; a tile's
  // input (channels × 6 floats) stays in L1 across the group's pairs.
  long group = (1 << 15) / (16 * channels);
  if (group < 1) group = 1;
  for (long group_start = first_pair; group_start < end_pair; group_start += group) {
    long group_end = group_start + group < end_pair ? group_start + group : end_pair;
    for (long p = first; p < end; p += 6) {
      int count = end - p < 6 ? (int)(end - p) : 6;
      for (long pair = group_start; pair < group_end; pair++) {
        int wide = features - pair * 16 >= 16 ? 2 : 1;
        long offset = pair * 2 * step + p * 8;
        const float *b = bias ? bias + pair * 16 : 0, *r = residual ? residual + offset : 0;
        if (prefetch) {
          pointwise_tile_prefetching(
              packed + pair * 16 * channels, channels, wide, x + p * 8, step, count, y + offset, b, r, low, high);
        } else {
          pointwise_tile_any(
              packed + pair * 16 * channels, channels, wide, x + p * 8, step, count, y + offset, b, r, low, high);
        }
      }
    }
  }
}

void shoal_pack_depthwise_blocks(const float *w, long channels, float *packed) {
  for (long c = 0; c < channels; c++) {
    for (long tap = 0; tap < 9; tap++) packed[(c / 8) * 72 + tap * 8 + c % 8] = w[c * 9 + tap];
  }
}

/// One output vector of a 3×3 depthwise block plane whose window may reach over the border.
AVX2_INLINE __m256 depthwise_edge(
    const float *x, long in_h, long in_w, long ih0, long iw0, const __m256 k[9]) {
  __m256 sum = _mm256_setzero_ps();
  for (long kh = 0; kh < 3; kh++) {
    long ih = ih0 + kh;
    if (ih < 0 || ih >= in_h) continue;
    for (long kw = 0; kw < 3; kw++) {
      long iw = iw0 + kw;
      if (iw < 0 || iw >= in_w) continue;
      sum = _mm256_fmadd_ps(_mm256_loadu_ps(x + (ih * in_w + iw) * 8), k[kh * 3 + kw], sum);
    }
  }
  return sum;
}

AVX2 void shoal_depthwise3x3_blocks_plane(
    const float *x, long in_h, long in_w, long stride, const float *packed, const float *bias,
    const float *residual, float *y, long out_h, long out_w, long first_row, long end_row, float lower,
    float upper) {
  __m256 k[9];
  for (int tap = 0; tap < 9; tap++) k[tap] = _mm256_loadu_ps(packed + tap * 8);
  const __m256 b = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 low = _mm256_set1_ps(lower), high = _mm256_set1_ps(upper);
  // Columns whose three taps all lie inside a row: iw0 = ow · stride − 1 ≥ 0 and iw0 + 2 < in_w.
  long inner_begin = 1 < out_w ? 1 : out_w;
  long inner_end = (in_w - 2) / stride + 1;
  if (inner_end > out_w) inner_end = out_w;
  if (inner_end < inner_begin) inner_end = inner_begin;
  for (long oh = first_row; oh < end_row; oh++) {
    long ih0 = oh * stride - 1;
    float *out = y + oh * out_w * 8;
    const float *res = residual ? residual + oh * out_w * 8 : 0;
    for (long ow = 0; ow < inner_begin; ow++) {
      __m256 sum = depthwise_edge(x, in_h, in_w, ih0, ow * stride - 1, k);
      finish_vector(out + ow * 8, sum, b, res ? res + ow * 8 : 0, low, high);
    }
    if (ih0 >= 0 && ih0 + 2 < in_h) {
      const float *r0 = x + ih0 * in_w * 8, *r1 = r0 + in_w * 8, *r2 = r1 + in_w * 8;
      for (long ow = inner_begin; ow < inner_end; ow++) {
        long at = (ow * stride - 1) * 8;
        __m256 s0 = _mm256_mul_ps(_mm256_loadu_ps(r0 + at), k[0]);
        __m256 s1 = _mm256_mul_ps(_mm256_loadu_ps(r1 + at), k[3]);
        __m256 s2 = _mm256_mul_ps(_mm256_loadu_ps(r2 + at), k[6]);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + at + 8), k[1], s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + at + 8), k[4], s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + at + 8), k[7], s2);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + at + 16), k[2], s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + at + 16), k[5], s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + at + 16), k[8], s2);
        __m256 sum = _mm256_add_ps(_mm256_add_ps(s0, s1), s2);
        finish_vector(out + ow * 8, sum, b, res ? res + ow * 8 : 0, low, high);
      }
    } else {
      for (long ow = inner_begin; ow < inner_end; ow++) {
        __m256 sum = depthwise_edge(x, in_h, in_w, ih0, ow * stride - 1, k);
        finish_vector(out + ow * 8, sum, b, res ? res + ow * 8 : 0, low, high);
      }
    }
    for (long ow = inner_end; ow < out_w; ow++) {
      __m256 sum = depthwise_edge(x, in_h, in_w, ih0, ow * stride - 1, k);
      finish_vector(out + ow * 8, sum, b, res ? res + ow * 8 : 0, low, high);
    }
  }
}

AVX2 void shoal_global_average_blocks(const float *x, long blocks, long positions, float *y) {
  const __m256 scale = _mm256_set1_ps(1.0f / (float)positions);
  for (long block = 0; block < blocks; block++) {
    const float *source = x + block * positions * 8;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    long p = 0;
    for (; p + 2 <= positions; p += 2) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(source + p * 8));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(source + p * 8 + 8));
    }
    if (p < positions) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(source + p * 8));
    _mm256_storeu_ps(y + block * 8, _mm256_mul_ps(_mm256_add_ps(s0, s1), scale));
  }
}

void shoal_pack_conv_blocks(const float *w, long features, long channels, long taps, float *packed) {
  for (long pair = 0; pair * 16 < features; pair++) {
    long wide = features - pair * 16 >= 16 ? 16 : 8;
    float *target = packed + pair * 16 * channels * taps;
    for (long tap = 0; tap < taps; tap++) {
      for (long c = 0; c < channels; c++) {
        for (long f = 0; f < wide; f++) {
          target[(tap * channels + c) * wide + f] = w[((pair * 16 + f) * channels + c) * taps + tap];
        }
      }
    }
  }
}

/// `count` outputs along a row × `wide` output blocks of a direct convolution: the window of the
/// first starts at input row ih0 and column iw0, the next ones `stride` columns on (`stride` 0:
/// `g->stride`; a constant 1 or 2 lets every broadcast take a fixed offset, measured 83–95
/// GFLOP/s on one core against 67–92 for SqueezeNet's and ResNet's 3×3 layers). The input is in
/// blocks, or with `planar` in planes [channels][in_h][in_w] of any number of channels (a
/// network's first layer, which then writes blocks without a reorder). Unless `edge`, every
/// tap's column lies inside the row for all the outputs, or there is a single output, which
/// skips the taps outside; with `edge`, the outputs whose column lies outside read zeros
/// instead. Rows outside the input are skipped (zero padding). (`pointwise_tile` is this
/// with one tap; run through here, a 1×1 layer measured 57–77 GFLOP/s on one core against
/// 90–98.)
AVX2_INLINE void conv_tile(
    const float *w, const struct shoal_conv_blocks *g, int wide, long stride, int planar, int edge, const float *x,
    long ih0, long iw0, int count, float *y, long y_step, const float *bias, const float *residual, __m256 lower,
    __m256 upper) {
  __m256 a0[6], a1[6];
  for (int r = 0; r < count; r++) a0[r] = a1[r] = _mm256_setzero_ps();
  const long s = stride ? stride : g->stride, plane = g->in_h * g->in_w;
  const long width = 8 * wide, x_step = plane * 8;
  for (long kh = 0; kh < g->kernel; kh++) {
    long ih = ih0 + kh;
    if (ih < 0 || ih >= g->in_h) continue;
    for (long kw = 0; kw < g->kernel; kw++) {
      long iw = iw0 + kw;
      if (count == 1 && (iw < 0 || iw >= g->in_w)) continue;
      const float *wt = w + (kh * g->kernel + kw) * g->channels * width;
      if (edge) {
        // An output whose column for this tap lies outside the row reads zeros: a pointer per
        // output, moved on by a block (or not at all) after each block. (Used for every tile,
        // this measured 2–4 % slower at 55 × 55 and 56 × 56 than the fixed offsets below.)
        static const float zeros[8];
        const float *p[6];
        long step[6];
        for (int r = 0; r < count; r++) {
          int inside = iw + r * s >= 0 && iw + r * s < g->in_w;
          p[r] = inside ? x + (ih * g->in_w + iw + r * s) * 8 : zeros;
          step[r] = inside ? x_step : 0;
        }
        for (long block = 0; block < g->channels / 8; block++) {
          const float *wb = wt + block * 8 * width;
          for (int k = 0; k < 8; k++) {
            __m256 w0 = _mm256_loadu_ps(wb + k * width);
            __m256 w1 = wide == 2 ? _mm256_loadu_ps(wb + k * width + 8) : w0;
            for (int r = 0; r < count; r++) {
              __m256 v = _mm256_broadcast_ss(p[r] + k);
              a0[r] = _mm256_fmadd_ps(w0, v, a0[r]);
              if (wide == 2) a1[r] = _mm256_fmadd_ps(w1, v, a1[r]);
            }
          }
          for (int r = 0; r < count; r++) p[r] += step[r];
        }
        continue;
      }
      if (planar) {
        const float *xt = x + ih * g->in_w + iw;
        for (long c = 0; c < g->channels; c++) {
          __m256 w0 = _mm256_loadu_ps(wt + c * width);
          __m256 w1 = wide == 2 ? _mm256_loadu_ps(wt + c * width + 8) : w0;
          for (int r = 0; r < count; r++) {
            __m256 v = _mm256_broadcast_ss(xt + c * plane + r * s);
            a0[r] = _mm256_fmadd_ps(w0, v, a0[r]);
            if (wide == 2) a1[r] = _mm256_fmadd_ps(w1, v, a1[r]);
          }
        }
        continue;
      }
      const float *xt = x + (ih * g->in_w + iw) * 8;
      for (long block = 0; block < g->channels / 8; block++) {
        const float *xb = xt + block * x_step;
        const float *wb = wt + block * 8 * width;
        for (int k = 0; k < 8; k++) {
          __m256 w0 = _mm256_loadu_ps(wb + k * width);
          __m256 w1 = wide == 2 ? _mm256_loadu_ps(wb + k * width + 8) : w0;
          for (int r = 0; r < count; r++) {
            __m256 v = _mm256_broadcast_ss(xb + r * s * 8 + k);
            a0[r] = _mm256_fmadd_ps(w0, v, a0[r]);
            if (wide == 2) a1[r] = _mm256_fmadd_ps(w1, v, a1[r]);
          }
        }
      }
    }
  }
  store_tile(a0, a1, wide, count, y, y_step, bias, residual, lower, upper);
}

#define CONV_CASE(n, stride, planar, edge)                                                                \
  case n:                                                                                                 \
    if (wide == 2) {                                                                                      \
      conv_tile(w, g, 2, stride, planar, edge, x, ih0, iw0, n, y, y_step, bias, residual, lower, upper);  \
    } else {                                                                                              \
      conv_tile(w, g, 1, stride, planar, edge, x, ih0, iw0, n, y, y_step, bias, residual, lower, upper);  \
    }                                                                                                     \
    break;

/// `conv_tile` for any count and width, with the stride, input layout and edge handling fixed.
#define CONV_TILE_ANY(name, stride, planar, edge)                                                       \
  AVX2 static void name(                                                                                \
      const float *w, const struct shoal_conv_blocks *g, int wide, const float *x, long ih0, long iw0, \
      int count, float *y, long y_step, const float *bias, const float *residual, __m256 lower,        \
      __m256 upper) {                                                                                   \
    switch (count) {                                                                                    \
      CONV_CASE(1, stride, planar, edge)                                                                \
      CONV_CASE(2, stride, planar, edge)                                                                \
      CONV_CASE(3, stride, planar, edge)                                                                \
      CONV_CASE(4, stride, planar, edge)                                                                \
      CONV_CASE(5, stride, planar, edge)                                                                \
      CONV_CASE(6, stride, planar, edge)                                                                \
    }                                                                                                   \
  }

CONV_TILE_ANY(conv_tile_stride1, 1, 0, 0)
CONV_TILE_ANY(conv_tile_stride1_edge, 1, 0, 1)
CONV_TILE_ANY(conv_tile_stride2, 2, 0, 0)
CONV_TILE_ANY(conv_tile_stride2_edge, 2, 0, 1)
CONV_TILE_ANY(conv_tile_strided, 0, 0, 0)
CONV_TILE_ANY(conv_tile_planes, 0, 1, 0)

AVX2 void shoal_conv_blocks_rows(
    const float *packed, const struct shoal_conv_blocks *g, const float *x, long first_row, long end_row,
    long first_pair, long end_pair, float *y, const float *bias, const float *residual, float lower, float upper) {
  const __m256 low = _mm256_set1_ps(lower), high = _mm256_set1_ps(upper);
  const long y_step = g->out_h * g->out_w * 8, taps = g->kernel * g->kernel;
  const int variant = g->planar ? 0 : g->stride == 1 ? 1 : g->stride == 2 ? 2 : 3;
  const long tiles = (g->out_w + 5) / 6;
  // Outputs whose windows lie inside the row: ow · stride − pad ≥ 0 and + kernel − 1 < in_w.
  long inner_begin = (g->pad + g->stride - 1) / g->stride;
  long inner_end = g->in_w - g->kernel + g->pad < 0 ? 0 : (g->in_w - g->kernel + g->pad) / g->stride + 1;
  if (inner_begin > g->out_w) inner_begin = g->out_w;
  if (inner_end > g->out_w) inner_end = g->out_w;
  if (inner_end < inner_begin) inner_end = inner_begin;
  // A pair's weights (taps · channels · 16 floats) stay in cache over all the rows.
  for (long pair = first_pair; pair < end_pair; pair++) {
    int wide = g->features - pair * 16 >= 16 ? 2 : 1;
    const float *w = packed + pair * 16 * g->channels * taps;
    const float *b = bias ? bias + pair * 16 : 0;
    for (long oh = first_row; oh < end_row; oh++) {
      long ih0 = oh * g->stride - g->pad;
      long row = pair * 2 * y_step + oh * g->out_w * 8;
      for (long tile = 0, ow = 0; ow < g->out_w; tile++) {
        // With stride 1 or 2, the row in even tiles of up to 6 (13 as 5 + 4 + 4), those that
        // cross a side as edge tiles: SqueezeNet's 3×3 layers at 13 × 13 and 27 × 27 measured
        // 98–101 GFLOP/s on one core against 84–85 with single outputs at the sides. Otherwise
        // single outputs at the sides and tiles of 6 between.
        int count = 1, edge = 0;
        if (variant == 1 || variant == 2) {
          count = (int)((tile + 1) * g->out_w / tiles - ow);
          edge = ow < inner_begin || ow + count > inner_end;
        } else if (ow >= inner_begin && ow < inner_end) {
          count = inner_end - ow < 6 ? (int)(inner_end - ow) : 6;
        }
        // Called directly (a call through a pointer passes the vectors in memory).
        long iw0 = ow * g->stride - g->pad;
        float *out = y + row + ow * 8;
        const float *r = residual ? residual + row + ow * 8 : 0;
        switch (variant + 4 * edge) {
          case 0: conv_tile_planes(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
          case 1: conv_tile_stride1(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
          case 2: conv_tile_stride2(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
          case 5: conv_tile_stride1_edge(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
          case 6: conv_tile_stride2_edge(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
          default: conv_tile_strided(w, g, wide, x, ih0, iw0, count, out, y_step, b, r, low, high); break;
        }
        ow += count;
      }
    }
  }
}

/// The maximum over a k_h × k_w window, `row` floats from one window row to the next, with
/// no bounds to check. A NaN in the window wins it.
AVX2_INLINE __m256 window_max(const float *x, long row, long k_h, long k_w) {
  __m256 m = _mm256_loadu_ps(x), nan = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
  for (long kh = 0; kh < k_h; kh++) {
    for (long kw = kh == 0 ? 1 : 0; kw < k_w; kw++) {
      __m256 v = _mm256_loadu_ps(x + kh * row + kw * 8);
      m = _mm256_max_ps(m, v);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
  }
  return _mm256_or_ps(m, nan);
}

/// The 3 × 3 window of `window_max`, unrolled.
AVX2_INLINE __m256 window_max3(const float *x, long row) {
  __m256 m = _mm256_loadu_ps(x), nan = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
  for (int i = 1; i < 9; i++) {
    __m256 v = _mm256_loadu_ps(x + (i / 3) * row + (i % 3) * 8);
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  return _mm256_or_ps(m, nan);
}

AVX2 void shoal_max_pool_blocks_plane(
    const float *x, long in_h, long in_w, float *y, long out_w, long k_h, long k_w, long s_h, long s_w, long p_h,
    long p_w, long first_row, long end_row) {
  const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
  const long row = in_w * 8;
  for (long oh = first_row; oh < end_row; oh++) {
    long ih0 = oh * s_h - p_h;
    int rows_inside = ih0 >= 0 && ih0 + k_h <= in_h;
    for (long ow = 0; ow < out_w; ow++) {
      long iw0 = ow * s_w - p_w;
      float *out = y + (oh * out_w + ow) * 8;
      if (rows_inside && iw0 >= 0 && iw0 + k_w <= in_w) {
        const float *window = x + ih0 * row + iw0 * 8;
        _mm256_storeu_ps(out, k_h == 3 && k_w == 3 ? window_max3(window, row) : window_max(window, row, k_h, k_w));
        continue;
      }
      // Across the border: the padding never wins.
      __m256 m = lowest, nan = _mm256_setzero_ps();
      for (long kh = 0; kh < k_h; kh++) {
        long ih = ih0 + kh;
        if (ih < 0 || ih >= in_h) continue;
        for (long kw = 0; kw < k_w; kw++) {
          long iw = iw0 + kw;
          if (iw < 0 || iw >= in_w) continue;
          __m256 v = _mm256_loadu_ps(x + ih * row + iw * 8);
          m = _mm256_max_ps(m, v);
          nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
      }
      _mm256_storeu_ps(out, _mm256_or_ps(m, nan));
    }
  }
}
