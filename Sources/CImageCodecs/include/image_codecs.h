#ifndef SHOAL_IMAGE_CODECS_H
#define SHOAL_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

/// A decoded image: 8-bit samples, interleaved, rows without padding. `pixels` is malloc'd;
/// free it with shoal_image_free.
typedef struct {
  uint8_t *pixels;
  int width;
  int height;
  /// 1 (gray) or 3 (RGB): alpha is dropped, palettes are expanded.
  int channels;
} shoal_decoded_image;

/// Decodes a PNG (gray, gray+alpha, RGB, RGBA, palette; 1 to 16 bits: 16-bit samples keep their
/// high byte, as Pillow does). Returns 0, or -1 with a message in `error` (of `error_size` bytes).
int shoal_png_decode(const uint8_t *data, size_t size, shoal_decoded_image *image, char *error, size_t error_size);

/// Decodes a JPEG (baseline or progressive; gray, YCbCr or RGB) with libjpeg's default integer
/// IDCT and fancy upsampling, as Pillow does. Returns 0, or -1 with a message in `error`.
int shoal_jpeg_decode(const uint8_t *data, size_t size, shoal_decoded_image *image, char *error, size_t error_size);

/// Encodes 8-bit gray (1), RGB (3) or RGBA (4) pixels as a PNG into a malloc'd buffer.
/// Returns 0, or -1 with a message in `error`.
int shoal_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                     char *error, size_t error_size);

void shoal_image_free(void *pointer);

#endif
