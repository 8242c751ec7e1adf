#ifndef SHOAL_MODEL_KERNELS_H
#define SHOAL_MODEL_KERNELS_H

/// Inner loops of the model core that the default Swift target (SSE2) runs 4 wide, built here
/// with per-function target attributes so that a CPU with AVX2 and FMA runs them 8 wide, and one
/// with AVX-512 16 wide; the choice is made once, at run time, from what the CPU reports.

/// Whether this CPU has AVX2 and FMA (and the kernels below use them); `SHOAL_KERNELS=portable`
/// in the environment says no.
int shoal_kernels_have_avx2(void);

/// Whether this CPU has AVX-512 (and `shoal_gemm_panels` may be called); `SHOAL_KERNELS=portable`
/// or `SHOAL_KERNELS=avx2` in the environment says no.
int shoal_kernels_have_avx512(void);

/// One plane of a 3×3 depthwise convolution: output row oh is, for i < out_width,
/// out[oh · out_width + i] = Σ over the three rows r of w[3r] · row_r[i] + w[3r + 1] · row_r[i + tap1]
/// + w[3r + 2] · row_r[i + tap2], where row_r = padded + oh · row_step + r · row_length. (Stride 1:
/// taps 1 and 2; stride 2 with each row split into even then odd columns: taps `even width` and
/// 1.) Rows must be readable for out_width + tap1 and out_width + tap2 elements. Each output gets
/// `bias` added and is then kept within [low, high] (±infinity for none), NaN passing through.
void shoal_depthwise3x3_plane(
    const float *padded, long row_length, long row_step, long tap1, long tap2, const float *weights, float bias,
    float low, float high, float *out, long out_height, long out_width);

/// 16 consecutive outputs of a stride-1 3×3 depthwise plane that keeps its size (2 rows and 2
/// columns of padding in all, before and after), for `shoal_depthwise3x3_flat`:
/// where the first lane's window starts in the input plane (its top-left tap, possibly in the
/// padding), which lanes each tap (3 kh + kw) reads inside the input, which lanes are outputs.
struct shoal_depthwise_block {
  long start;
  unsigned short taps[9];
  unsigned short outputs;
};

/// The blocks of 16 outputs a [height × width] plane takes.
long shoal_depthwise3x3_blocks(long height, long width);

/// Fills `blocks` (`shoal_depthwise3x3_blocks` of them) for a [height × width] plane with
/// padding p_h, p_w before: the same for every plane of a layer.
void shoal_depthwise3x3_prepare(long height, long width, long p_h, long p_w, struct shoal_depthwise_block *blocks);

/// One plane of a stride-1 3×3 depthwise convolution that keeps the plane's size, 16 outputs
/// of the flattened plane at a time with masked loads straight from the input plane `in` (rows
/// `width` long), padding read as zero. Each output gets `bias` added and is then kept within
/// [low, high] (±infinity for none), NaN passing through. AVX-512 only.
void shoal_depthwise3x3_flat(
    const float *in, long width, const struct shoal_depthwise_block *blocks, long count, const float *weights,
    float bias, float low, float high, float *out);

/// The rows of a weight panel and the columns of a tile in `shoal_gemm_panels`.
#define SHOAL_PANEL_ROWS 32
#define SHOAL_TILE_COLUMNS 12

/// Packs `a` [rows × depth] row-major into panels of 32 rows, each [depth][32] (a step of k
/// holds the panel's 32 rows side by side), the last one padded with zero rows:
/// ⌈rows / 32⌉ · depth · 32 floats, 64-byte aligned when `packed` is.
void shoal_pack_panels(const float *a, long rows, long depth, float *packed);

/// Packs tiles `first_tile..<end_tile` of `b` [depth × columns] (leading dimension `ldb`) into
/// `packed` (depth · columns floats): tile t holds columns 12t..<min(12t + 12, columns), stored
/// [depth][width] from float 12t · depth on.
void shoal_pack_tiles(const float *b, long depth, long columns, long ldb, long first_tile, long end_tile, float *packed);

/// C = A · B (+ bias per row, + residual, then max(0, ·) if `relu`) for the (panel, tile) units
/// `first..<end`, unit u being panel u / tiles and tile u % tiles: `packed_a` from
/// `shoal_pack_panels`, `packed_b` from `shoal_pack_tiles`, C [rows × columns] (and the
/// residual, laid out like it) with leading dimension `ldc`. Every sum runs over the whole depth
/// in registers, so C is written once.
/// For narrow products (few columns: late convolution layers), where a GEMM that keeps a row's
/// columns in its registers wastes lanes. AVX-512 only.
void shoal_gemm_panels(
    const float *packed_a, long rows, long depth, const float *packed_b, long columns, float *c, long ldc,
    const float *bias, const float *residual, int relu, long first, long end);

/// Winograd F(2×2, 3×3)'s input transform `Bᵀ d B` for `count` consecutive tiles of one tile
/// row: tile t's 4×4 block d starts at column 2t of `row0` and the three rows after it (`width`
/// floats apart); element (i, j) of its result goes to `out[(4i + j) · matrix + t]`. With
/// fewer than 8 tiles, 18 floats are read from the start of each row (past its end, so the
/// memory there must be readable).
void shoal_winograd_input_tiles(const float *row0, long width, float *out, long matrix, long count);

/// Winograd F(2×2, 3×3)'s output transform `Aᵀ m A` for `count` consecutive tiles whose 2×2
/// outputs lie inside the image: tile t's product (i, j) is `m[(4i + j) · matrix + t]`, its
/// outputs go to `out[2t]`, `out[2t + 1]` and the same one row (`out_width`) below.
void shoal_winograd_output_tiles(const float *m, long matrix, float *out, long out_width, long count);

/// Winograd F(4×4, 3×3)'s input transform `Bᵀ d B` for `count` consecutive tiles of one tile
/// row: tile t's 6×6 block d starts at column 4t of `row0` and the five rows after it (`width`
/// floats apart); element (i, j) of its result goes to `out[(6i + j) · matrix + t]`. Tiles go
/// 8 at a time, each block reading 36 floats of every row from its first tile's column, so up
/// to 34 floats past the end of each row (4 · count + 2 floats) must be readable.
void shoal_winograd4_input_tiles(const float *row0, long width, float *out, long matrix, long count);

/// Winograd F(4×4, 3×3)'s output transform `Aᵀ m A` for the `count` tiles of one tile row:
/// tile t's product (i, j) is `m[(6i + j) · matrix + t]`; its outputs go to `out[4t…]` and the
/// rows below it (`out_width` floats apart), cut to the `out_rows` rows (at most 4) and
/// `out_width` columns of the image. Products are read for up to 7 tiles past the last one.
void shoal_winograd4_output_tiles(
    const float *m, long matrix, float *out, long out_width, long out_rows, long count);

/// C = A · B (+ bias per row, + residual, then max(0, ·) if `relu`) for all `rows` rows of
/// `packed_a` (from `shoal_pack_panels`) and `columns` columns of `b` [depth × columns]
/// (leading dimension `ldb`), 8 rows × 32 columns at a time with every sum over the whole
/// depth in registers, so C (and the residual, laid out like it, leading dimension `ldc`) is
/// touched once. `pack` holds depth · 32 floats (64-byte aligned) for a block of B.
/// AVX-512 only.
void shoal_gemm_rows(
    const float *packed_a, long rows, long depth, const float *b, long ldb, long columns, float *c, long ldc,
    const float *bias, const float *residual, int relu, float *pack);

/// `shoal_gemm_rows` with AVX2 and FMA, for CPUs without AVX-512: the same packed A, 6 rows ×
/// 16 columns at a time (tiles of 6, 6, 6, 6, 4 and 4 rows per panel), and the outputs bounded
/// to [lower, upper] (a fused ReLU or Clip; NaN stays NaN) as they are written. Full tiles use
/// plain stores: AMD's masked stores cost several times as much (with them this kernel was
/// slower than OpenBLAS). AVX2 and FMA only.
void shoal_gemm_rows_avx2(
    const float *packed_a, long rows, long depth, const float *b, long ldb, long columns, float *c, long ldc,
    const float *bias, const float *residual, float lower, float upper, float *pack);

/// A 2-D convolution's geometry for `shoal_conv_rows`: the input's channels and plane size, the
/// output's width, the kernel, strides (the column stride 1 or 2), padding before and dilations.
struct shoal_conv2d {
  long channels, in_h, in_w, out_w, k_h, k_w, s_h, s_w, p_h, p_w, d_h, d_w;
};

/// `shoal_gemm_rows` on the convolution's unfolded input without unfolding it: output positions
/// `first..<first + columns` of one image [channels × in_h × in_w], 32 at a time, are packed into
/// `pack` (depth · 32 floats, 64-byte aligned; depth = channels · k_h · k_w) straight from the
/// image and multiplied; C (and the residual) start at position `first`. AVX-512 only.
void shoal_conv_rows(
    const float *packed_a, long rows, const float *image, const struct shoal_conv2d *g, long first, long columns,
    float *c, long ldc, const float *bias, const float *residual, int relu, float *pack);

/// `shoal_pack_tiles` of the convolution's unfolded input (`columns` output positions of one
/// image) without unfolding it: tiles `first_tile..<end_tile` packed straight from the image.
/// AVX-512 only.
void shoal_pack_conv_tiles(
    const float *image, const struct shoal_conv2d *g, long columns, long first_tile, long end_tile, float *packed);

/// The floats of the `row` buffer `shoal_max_pool_plane` needs (at least inW + 16).
long shoal_max_pool_row_floats(long inW, long outW, long kW, long sW, long pW);

/// 2-D max pooling of one plane x [inH × inW] into output rows first_row..<end_row of y [outH ×
/// outW] (windows kH × kW, strides sH and sW, padding pH and pW before; positions outside the
/// plane are left out, NaN wins its windows, a window with no row inside gives −infinity). `row`
/// holds `shoal_max_pool_row_floats` floats. Returns 0 (and does nothing) unless the CPU has AVX2
/// and sW is 1 or 2, for the caller's own loop; AVX-512 does 16 windows at a time.
int shoal_max_pool_plane(
    const float *x, long inH, long inW, float *y, long first_row, long end_row, long outW, long kH, long kW, long sH,
    long sW, long pH, long pW, float *row);

/// Images with their channels in blocks of 8, [channels / 8][positions][8] (channel_blocks.c):
/// AVX2 and FMA only, so callers check `shoal_kernels_have_avx2` first.
///
/// Blocks `first_block..<end_block` of one image [channels][positions] into that layout, and back.
void shoal_blocks_from_planes(const float *x, long positions, long first_block, long end_block, float *y);
void shoal_planes_from_blocks(const float *x, long positions, long first_block, long end_block, float *y);

/// Packs a 1×1 convolution's weights [features][channels] for `shoal_pointwise_blocks`: pairs of
/// output blocks, each [channels][16] (the last one [channels][8] when features / 8 is odd).
void shoal_pack_pointwise_blocks(const float *w, long features, long channels, float *packed);

/// A 1×1 convolution of one blocked image, x [channels / 8][positions][8] → y
/// [features / 8][positions][8], for positions first..<end and output block pairs
/// first_pair..<end_pair: 6 positions × 16 features at a time, each output written once with
/// `bias` (features, or NULL), `residual` (laid out as y, or NULL) and then kept within
/// [lower, upper] (NaN passing through).
void shoal_pointwise_blocks(
    const float *packed, long channels, long features, const float *x, long positions, long first, long end,
    long first_pair, long end_pair, float *y, const float *bias, const float *residual, float lower,
    float upper);

/// Packs depthwise 3×3 weights [channels][1][3][3] as [channels / 8][9 taps][8].
void shoal_pack_depthwise_blocks(const float *w, long channels, float *packed);

/// Output rows first_row..<end_row of one block plane of a 3×3 depthwise convolution with
/// padding 1 and stride 1 or 2: x [in_h][in_w][8] → y [out_h][out_w][8], `packed` the block's
/// 9 × 8 weights, `bias` its 8 (or NULL), `residual` laid out as y (or NULL), outputs kept within
/// [lower, upper].
void shoal_depthwise3x3_blocks_plane(
    const float *x, long in_h, long in_w, long stride, const float *packed, const float *bias,
    const float *residual, float *y, long out_h, long out_w, long first_row, long end_row, float lower,
    float upper);

/// The mean over the positions of each of `blocks` blocks of one image: y [blocks · 8].
void shoal_global_average_blocks(const float *x, long blocks, long positions, float *y);

/// A direct convolution's geometry in channel blocks (group 1, a square kernel, the same stride
/// and padding on both axes). With `planar` nonzero, the input is in planes
/// [channels][in_h][in_w] with any number of channels (a network's first layer); the output is
/// in blocks either way.
struct shoal_conv_blocks {
  long channels, features, in_h, in_w, out_h, out_w, kernel, stride, pad, planar;
};

/// Packs convolution weights [features][channels][taps] for `shoal_conv_blocks_rows`: pairs of
/// output blocks, each [taps][channels][16] (the last one 8 wide when features / 8 is odd).
void shoal_pack_conv_blocks(const float *w, long features, long channels, long taps, float *packed);

/// Output rows first_row..<end_row and block pairs first_pair..<end_pair of a direct
/// convolution of one image (in blocks, or in planes with `g->planar`), up to 6 outputs along a
/// row × 16 features at a time (with strides other than 1 and 2, and from planes, one at a time
/// where the window crosses the left or right border), each written once with `bias`,
/// `residual` (laid out as y, or NULL) and then kept within [lower, upper].
void shoal_conv_blocks_rows(
    const float *packed, const struct shoal_conv_blocks *g, const float *x, long first_row, long end_row,
    long first_pair, long end_pair, float *y, const float *bias, const float *residual, float lower, float upper);

/// Output rows first_row..<end_row of one block plane of max pooling, x [in_h][in_w][8] → y
/// [rows][out_w][8]; the padding never wins, a NaN in a window does.
void shoal_max_pool_blocks_plane(
    const float *x, long in_h, long in_w, float *y, long out_w, long k_h, long k_w, long s_h, long s_w, long p_h,
    long p_w, long first_row, long end_row);

#endif
