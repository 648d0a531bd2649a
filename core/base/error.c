/*
 * error.c: names and messages for the KUALA_E* table in kuala/error.h.
 *
 * The table is the single source of truth; this file only expands it.
 */
#include "kuala/error.h"

#include <stddef.h>
#include <string.h>

typedef struct {
  int code;
  const char *name;
  const char *msg;
} err_entry_t;

#define XX(name, value, msg) {value, #name, msg},
static const err_entry_t err_table[] = {KUALA_ERRNO_MAP(XX) KUALA_API_ERR_MAP(XX)};
#undef XX

static const err_entry_t *lookup(int err)
{
  for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
    if (err_table[i].code == err) {
      return &err_table[i];
    }
  }
  return NULL;
}

const char *kuala_strerror(int err)
{
  if (err == 0) {
    return "success";
  }
  const err_entry_t *e = lookup(err);
  if (e) {
    return e->msg;
  }
  /* Any other negative errno from libuv or libc. */
  if (err < 0 && err > -4096) {
    return strerror(-err);
  }
  return "unknown error";
}

const char *kuala_err_name(int err)
{
  if (err == 0) {
    return "OK";
  }
  const err_entry_t *e = lookup(err);
  return e ? e->name : "UNKNOWN";
}

int kuala_err_from_http(int status)
{
  if (status >= 200 && status < 300) {
    return 0;
  }
  switch (status) {
    case 400:
      return KUALA_EBADREQUEST;
    case 401:
      return KUALA_EUNAUTHORIZED;
    case 403:
      return KUALA_EFORBIDDEN;
    case 404:
      return KUALA_ENOTFOUND;
    case 405:
      return KUALA_EMETHOD;
    case 406:
      return KUALA_ENOTACCEPTABLE;
    case 409:
      return KUALA_ECONFLICT;
    case 410:
      return KUALA_EGONE;
    case 413:
      return KUALA_ETOOLARGE;
    case 415:
      return KUALA_EUNSUPPORTEDMEDIA;
    case 422:
      return KUALA_EINVALID;
    case 429:
      return KUALA_ETOOMANY;
    case 500:
      return KUALA_EINTERNAL;
    case 503:
      return KUALA_EUNAVAILABLE;
    case 504:
      return KUALA_ESERVERTIMEOUT;
    default:
      return KUALA_EAPI;
  }
}
