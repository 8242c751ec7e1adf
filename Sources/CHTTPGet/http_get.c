#include "http_get.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct shoal_http_handle {
  CURL *curl;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

shoal_http_handle *shoal_http_handle_new(void) {
  pthread_once(&global_once, global_init);
  shoal_http_handle *handle = calloc(1, sizeof *handle);
  if (!handle) return NULL;
  handle->curl = curl_easy_init();
  if (!handle->curl) {
    free(handle);
    return NULL;
  }
  return handle;
}

void shoal_http_handle_free(shoal_http_handle *handle) {
  if (!handle) return;
  curl_easy_cleanup(handle->curl);
  free(handle);
}

typedef struct {
  shoal_http_result *result;
  size_t capacity;
  size_t max_bytes;
  int too_large;
} body_sink;

static size_t write_body(char *data, size_t size, size_t count, void *context) {
  body_sink *sink = context;
  size_t bytes = size * count;
  shoal_http_result *result = sink->result;
  if (result->length + bytes > sink->max_bytes) {
    sink->too_large = 1;
    return 0;
  }
  if (result->length + bytes > sink->capacity) {
    size_t capacity = sink->capacity ? sink->capacity : 16384;
    while (capacity < result->length + bytes) capacity *= 2;
    uint8_t *grown = realloc(result->body, capacity);
    if (!grown) return 0;
    result->body = grown;
    sink->capacity = capacity;
  }
  memcpy(result->body + result->length, data, bytes);
  result->length += bytes;
  return bytes;
}

static size_t read_header(char *data, size_t size, size_t count, void *context) {
  shoal_http_result *result = context;
  size_t bytes = size * count;
  static const char name[] = "retry-after:";
  size_t name_length = sizeof name - 1;
  if (bytes > name_length && strncasecmp(data, name, name_length) == 0) {
    char value[32] = {0};
    size_t length = bytes - name_length < sizeof value - 1 ? bytes - name_length : sizeof value - 1;
    memcpy(value, data + name_length, length);
    char *end = NULL;
    long seconds = strtol(value, &end, 10);
    if (end != value && seconds >= 0) result->retry_after = seconds;
  }
  return bytes;
}

int shoal_http_get(shoal_http_handle *handle, const char *url, const char *const *headers, int header_count,
                   long connect_timeout_ms, long timeout_ms, size_t max_bytes, shoal_http_result *result) {
  return shoal_http_post(handle, url, headers, header_count, NULL, 0, connect_timeout_ms, timeout_ms, max_bytes,
                         result);
}

int shoal_http_post(shoal_http_handle *handle, const char *url, const char *const *headers, int header_count,
                    const uint8_t *body, size_t body_length, long connect_timeout_ms, long timeout_ms,
                    size_t max_bytes, shoal_http_result *result) {
  memset(result, 0, sizeof *result);
  result->retry_after = -1;
  CURL *curl = handle->curl;
  curl_easy_reset(curl);
  struct curl_slist *list = NULL;
  for (int i = 0; i < header_count; i++) {
    struct curl_slist *appended = curl_slist_append(list, headers[i]);
    if (!appended) {
      curl_slist_free_all(list);
      strcpy(result->error, "out of memory for the request headers");
      return -1;
    }
    list = appended;
  }
  body_sink sink = {result, 0, max_bytes, 0};
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "shoal-imagery/1");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, result);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (body) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
    // A webhook is not followed across redirects with its body.
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  }
  CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(list);
  if (code != CURLE_OK) {
    if (sink.too_large) {
      snprintf(result->error, sizeof result->error, "the response is larger than %zu bytes", max_bytes);
    } else {
      snprintf(result->error, sizeof result->error, "%s", error[0] ? error : curl_easy_strerror(code));
    }
    free(result->body);
    result->body = NULL;
    result->length = 0;
    return -1;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result->status);
  char *type = NULL;
  if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type) {
    snprintf(result->content_type, sizeof result->content_type, "%s", type);
  }
  return 0;
}

void shoal_http_result_free(shoal_http_result *result) {
  free(result->body);
  result->body = NULL;
  result->length = 0;
}
