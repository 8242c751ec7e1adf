#ifndef SHOAL_HTTP_GET_H
#define SHOAL_HTTP_GET_H

#include <stddef.h>
#include <stdint.h>

/// One reusable libcurl handle: its connections stay open between requests (keep-alive).
/// Use a handle on one thread at a time.
typedef struct shoal_http_handle shoal_http_handle;

/// What one GET gave: the HTTP status (0 when no response came), the body (malloc'd; free with
/// shoal_http_result_free), the Content-Type, Retry-After in seconds (-1 when absent), and on a
/// transport failure libcurl's message in `error`.
typedef struct {
  long status;
  uint8_t *body;
  size_t length;
  char content_type[128];
  long retry_after;
  char error[256];
} shoal_http_result;

shoal_http_handle *shoal_http_handle_new(void);
void shoal_http_handle_free(shoal_http_handle *handle);

/// GETs `url` (http or https only; up to 5 redirects) with `header_count` request headers
/// ("Name: value"), giving up on connecting after `connect_timeout_ms` and on the whole request
/// after `timeout_ms`, and refusing bodies over `max_bytes`. Returns 0 when a response came (of any
/// status), -1 on a transport failure (with `error` set).
int shoal_http_get(shoal_http_handle *handle, const char *url, const char *const *headers, int header_count,
                   long connect_timeout_ms, long timeout_ms, size_t max_bytes, shoal_http_result *result);

/// POSTs `body_length` bytes of `body` to `url` as shoal_http_get GETs (no redirects followed);
/// with a NULL body it is a GET.
int shoal_http_post(shoal_http_handle *handle, const char *url, const char *const *headers, int header_count,
                    const uint8_t *body, size_t body_length, long connect_timeout_ms, long timeout_ms,
                    size_t max_bytes, shoal_http_result *result);

void shoal_http_result_free(shoal_http_result *result);

#endif
