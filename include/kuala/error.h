/*
 * kuala error codes.
 *
 * Fallible functions return an int: 0 on success, a negative KUALA_E* code on
 * failure. The codes come from one X-macro table: the first block maps to
 * negative errno values (so a uv or system error passes through unchanged),
 * the second holds Kubernetes API outcomes, numbered far below any errno.
 */
#ifndef KUALA_ERROR_H
#define KUALA_ERROR_H

#include <errno.h>

/* XX(NAME, value, message) for errno-compatible codes. */
#define KUALA_ERRNO_MAP(XX)                               \
  XX(EINVAL, -EINVAL, "invalid argument")                 \
  XX(ENOMEM, -ENOMEM, "out of memory")                    \
  XX(E2BIG, -E2BIG, "size limit exceeded")                \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable") \
  XX(ENOENT, -ENOENT, "no such file or directory")        \
  XX(EEXIST, -EEXIST, "file already exists")              \
  XX(EIO, -EIO, "i/o error")                              \
  XX(EACCES, -EACCES, "permission denied")                \
  XX(EBUSY, -EBUSY, "resource busy")                      \
  XX(ENOSYS, -ENOSYS, "function not implemented")         \
  XX(ECANCELED, -ECANCELED, "operation canceled")         \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                  \
  XX(EPROTO, -EPROTO, "protocol error")                   \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")   \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer") \
  XX(EPIPE, -EPIPE, "broken pipe")                        \
  XX(ESHUTDOWN, -ESHUTDOWN, "shut down")                  \
  XX(ERANGE, -ERANGE, "result out of range")              \
  XX(EBADMSG, -EBADMSG, "malformed message")              \
  XX(ENOTSUP, -ENOTSUP, "operation not supported")

/* XX(NAME, value, message) for Kubernetes API outcomes (HTTP status). */
#define KUALA_API_ERR_MAP(XX)                                  \
  XX(EBADREQUEST, -4400, "bad request (400)")                  \
  XX(EUNAUTHORIZED, -4401, "unauthorized (401)")               \
  XX(EFORBIDDEN, -4403, "forbidden (403)")                     \
  XX(ENOTFOUND, -4404, "not found (404)")                      \
  XX(EMETHOD, -4405, "method not allowed (405)")               \
  XX(ENOTACCEPTABLE, -4406, "not acceptable (406)")            \
  XX(ECONFLICT, -4409, "conflict (409)")                       \
  XX(EEXISTS, -4410, "already exists (409)")                   \
  XX(EGONE, -4411, "resource version expired (410)")           \
  XX(ETOOLARGE, -4413, "request entity too large (413)")       \
  XX(EUNSUPPORTEDMEDIA, -4415, "unsupported media type (415)") \
  XX(EINVALID, -4422, "invalid (422)")                         \
  XX(ETOOMANY, -4429, "too many requests (429)")               \
  XX(EINTERNAL, -4500, "internal server error (500)")          \
  XX(EUNAVAILABLE, -4503, "service unavailable (503)")         \
  XX(ESERVERTIMEOUT, -4504, "server timeout (504)")            \
  XX(EAPI, -4599, "unexpected API status")

enum kuala_errno {
#define XX(name, value, msg) KUALA_##name = value,
  KUALA_ERRNO_MAP(XX) KUALA_API_ERR_MAP(XX)
#undef XX
};

/* A human-readable message for `err`; never NULL, static storage. */
const char *kuala_strerror(int err);

/* The code's name without the KUALA_ prefix ("EINVAL"); "UNKNOWN" if none. */
const char *kuala_err_name(int err);

/* Map an HTTP status to the closest KUALA_E* code (0 for 2xx). */
int kuala_err_from_http(int status);

#endif /* KUALA_ERROR_H */
