#ifndef SHOAL_MODEL_KERNELS_H
#define SHOAL_MODEL_KERNELS_H

/// Inner loops of the model core that the default Swift target (SSE2) runs 4 wide, built here
/// with per-function target attributes so that a CPU with AVX2 and FMA runs them 8 wide; the
/// choice is made once, at run time, from what the CPU reports.

/// Whether this CPU has AVX2 and FMA (and the kernels below use them); `SHOAL_KERNELS=portable`
/// in the environment says no.
int shoal_kernels_have_avx2(void);

/// One output row of a 3×3 depthwise convolution: out[i] = Σ over the three rows r of
/// w[3r] · row_r[i] + w[3r + 1] · row_r[i + tap1] + w[3r + 2] · row_r[i + tap2], for i < count.
/// (Stride 1: taps 1 and 2; stride 2 with each row split into even then odd columns: taps
/// `even width` and 1.) Rows must be readable for count + tap1 and count + tap2 elements.
void shoal_depthwise3x3_row(
    const float *row0, const float *row1, const float *row2, long tap1, long tap2, const float *weights,
    float *out, long count);

#endif
