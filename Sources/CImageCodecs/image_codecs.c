#include "image_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

/* The most pixels a decoded image may have: a few hundred bytes of header can declare an image of
   gigabytes (a fuzzed 177-byte JPEG declared 29712 x 18798). */
#define SHOAL_MAX_PIXELS ((uint64_t)1 << 26)

// Both libraries report errors by longjmp, which Swift cannot catch: these wrappers keep the
// jumps inside C and return a message instead.

void shoal_image_free(void *pointer) { free(pointer); }

static void set_error(char *error, size_t size, const char *message) {
  if (error && size > 0) {
    strncpy(error, message, size - 1);
    error[size - 1] = 0;
  }
}

// MARK: PNG

typedef struct {
  const uint8_t *data;
  size_t size;
  size_t offset;
  char message[256];
} png_source;

static void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
  png_source *source = (png_source *)png_get_io_ptr(png);
  if (source->offset + count > source->size) {
    png_error(png, "the file ends early (truncated)");
  }
  memcpy(out, source->data + source->offset, count);
  source->offset += count;
}

static void png_on_error(png_structp png, png_const_charp message) {
  png_source *source = (png_source *)png_get_error_ptr(png);
  snprintf(source->message, sizeof source->message, "%s", message);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message;
}

int shoal_png_decode(const uint8_t *data, size_t size, shoal_decoded_image *image, char *error, size_t error_size) {
  memset(image, 0, sizeof *image);
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    set_error(error, error_size, "not a PNG file (bad signature)");
    return -1;
  }
  png_source source = {data, size, 8, ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    set_error(error, error_size, "out of memory");
    png_destroy_read_struct(&png, NULL, NULL);
    return -1;
  }
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    set_error(error, error_size, source.message[0] ? source.message : "corrupt PNG");
    free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  png_set_read_fn(png, &source, png_read_memory);
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, 1 << 15, 1 << 15);
  png_read_info(png, info);
  int color = png_get_color_type(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int width = (int)png_get_image_width(png, info);
  int height = (int)png_get_image_height(png, info);
  if ((uint64_t)width * (uint64_t)height > SHOAL_MAX_PIXELS) {
    png_error(png, "the image has more pixels than the limit of 67108864 (8192 x 8192)");
  }
  int channels = png_get_channels(png, info);
  if (channels != 1 && channels != 3) png_error(png, "unexpected channel count after expansion");
  size_t stride = (size_t)width * channels;
  pixels = malloc(stride * (size_t)height);
  rows = malloc(sizeof(png_bytep) * (size_t)height);
  if (!pixels || !rows) png_error(png, "out of memory");
  for (int y = 0; y < height; y++) rows[y] = pixels + stride * (size_t)y;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  image->pixels = pixels;
  image->width = width;
  image->height = height;
  image->channels = channels;
  return 0;
}

// MARK: PNG encoding

typedef struct {
  uint8_t *data;
  size_t size;
  size_t capacity;
  char message[256];
} png_sink;

static void png_write_memory(png_structp png, png_bytep bytes, png_size_t count) {
  png_sink *sink = (png_sink *)png_get_io_ptr(png);
  if (sink->size + count > sink->capacity) {
    size_t capacity = sink->capacity ? sink->capacity * 2 : 65536;
    while (capacity < sink->size + count) capacity *= 2;
    uint8_t *grown = realloc(sink->data, capacity);
    if (!grown) png_error(png, "out of memory");
    sink->data = grown;
    sink->capacity = capacity;
  }
  memcpy(sink->data + sink->size, bytes, count);
  sink->size += count;
}

static void png_flush_memory(png_structp png) { (void)png; }

static void png_on_write_error(png_structp png, png_const_charp message) {
  png_sink *sink = (png_sink *)png_get_error_ptr(png);
  snprintf(sink->message, sizeof sink->message, "%s", message);
  png_longjmp(png, 1);
}

int shoal_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                     char *error, size_t error_size) {
  *out = NULL;
  *out_size = 0;
  int color = channels == 1 ? PNG_COLOR_TYPE_GRAY
              : channels == 3 ? PNG_COLOR_TYPE_RGB
              : channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA
                              : -1;
  if (color < 0 || width <= 0 || height <= 0) {
    set_error(error, error_size, "PNG encoding takes 1, 3 or 4 channels and a non-empty image");
    return -1;
  }
  png_sink sink = {NULL, 0, 0, ""};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_on_write_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    set_error(error, error_size, "out of memory");
    png_destroy_write_struct(&png, NULL);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    set_error(error, error_size, sink.message[0] ? sink.message : "cannot encode the PNG");
    free(sink.data);
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_set_write_fn(png, &sink, png_write_memory, png_flush_memory);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  size_t stride = (size_t)width * channels;
  for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + stride * (size_t)y));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  *out = sink.data;
  *out_size = sink.size;
  return 0;
}

// MARK: JPEG

typedef struct {
  struct jpeg_error_mgr manager;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warned;
} jpeg_failure;

static void jpeg_on_error(j_common_ptr info) {
  jpeg_failure *failure = (jpeg_failure *)info->err;
  (*info->err->format_message)(info, failure->message);
  longjmp(failure->jump, 1);
}

// A warning (level -1) is corrupt data libjpeg would paper over (a truncated file becomes gray):
// kept, and the decode fails at the end, as Pillow's does.
static void jpeg_on_message(j_common_ptr info, int level) {
  jpeg_failure *failure = (jpeg_failure *)info->err;
  if (level < 0 && !failure->warned) {
    (*info->err->format_message)(info, failure->message);
    failure->warned = 1;
  }
}

int shoal_jpeg_decode(const uint8_t *data, size_t size, shoal_decoded_image *image, char *error, size_t error_size) {
  memset(image, 0, sizeof *image);
  if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
    set_error(error, error_size, "not a JPEG file (bad signature)");
    return -1;
  }
  struct jpeg_decompress_struct info;
  jpeg_failure failure;
  memset(&failure, 0, sizeof failure);
  info.err = jpeg_std_error(&failure.manager);
  failure.manager.error_exit = jpeg_on_error;
  failure.manager.emit_message = jpeg_on_message;
  uint8_t *volatile pixels = NULL;
  if (setjmp(failure.jump)) {
    set_error(error, error_size, failure.message[0] ? failure.message : "corrupt JPEG");
    free(pixels);
    jpeg_destroy_decompress(&info);
    return -1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, (unsigned long)size);
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    snprintf(failure.message, sizeof failure.message, "CMYK JPEG images are not supported");
    longjmp(failure.jump, 1);
  }
  info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (info.image_width > (1 << 15) || info.image_height > (1 << 15)) {
    snprintf(failure.message, sizeof failure.message, "the image is larger than 32768 pixels on a side");
    longjmp(failure.jump, 1);
  }
  if ((uint64_t)info.image_width * info.image_height > SHOAL_MAX_PIXELS) {
    snprintf(failure.message, sizeof failure.message, "the image is %ux%u, more pixels than the limit of 67108864 (8192 x 8192)",
             (unsigned)info.image_width, (unsigned)info.image_height);
    longjmp(failure.jump, 1);
  }
  jpeg_start_decompress(&info);
  int width = (int)info.output_width;
  int height = (int)info.output_height;
  int channels = info.output_components;
  size_t stride = (size_t)width * channels;
  pixels = malloc(stride * (size_t)height);
  if (!pixels) {
    snprintf(failure.message, sizeof failure.message, "out of memory");
    longjmp(failure.jump, 1);
  }
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = pixels + stride * info.output_scanline;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  if (failure.warned) longjmp(failure.jump, 1);
  jpeg_destroy_decompress(&info);
  image->pixels = pixels;
  image->width = width;
  image->height = height;
  image->channels = channels;
  return 0;
}
