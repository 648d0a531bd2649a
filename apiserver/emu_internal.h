/*
 * emu_internal.h: the request context and the helpers shared by server.c
 * (routing, reads, watch) and write.c (create, update, patch, delete).
 */
#ifndef KUALA_APISERVER_EMU_INTERNAL_H
#define KUALA_APISERVER_EMU_INTERNAL_H

#include <stdarg.h>

#include "emu.h"

typedef struct {
  emu_t *e;
  kuala__httpd_req_t *req;
  const char *method;
  emu_rtype_t *rt;
  char *ns;   /* NULL for cluster paths */
  char *name; /* NULL for collections */
  char *sub;  /* "status", "finalize" or NULL */
  int dry;    /* dryRun=All */
} emu_ctx_t;

void emu_reply_raw(kuala__httpd_req_t *req, int code, const char *body, size_t len);
/* Consumes obj. */
void emu_reply_json(kuala__httpd_req_t *req, int code, json_object *obj);
/* Like emu_reply_json, but renders a Table when the client asked for one. */
void emu_reply_object(kuala__httpd_req_t *req, const emu_rtype_t *rt, int code, json_object *obj);
/* Renders and clears err. */
void emu_reply_err(kuala__httpd_req_t *req, kuala_apierr_t *err);
void emu_reply_code(kuala__httpd_req_t *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int emu_err_notfound(kuala_apierr_t *err, const emu_rtype_t *rt, const char *name);
int emu_parse_rv(const char *s, uint64_t *out);
int emu_parse_selectors(kuala__httpd_req_t *req, const emu_rtype_t *rt, kuala_selector_t **ls,
                        kuala_selector_t **fs, kuala_apierr_t *err);
int emu_matches(const emu_rtype_t *rt, kuala_selector_t *ls, kuala_selector_t *fs, const char *ns,
                const char *name, json_object *labels, const char *json, size_t len);
/* The blob as seen through rt (apiVersion rewritten for non-storage versions). */
emu_blob_t *emu_view(const emu_rtype_t *rt, emu_blob_t *b);
/* The CRD schema of rt's version (borrowed) or NULL. */
json_object *emu_rtype_schema(const emu_rtype_t *rt);

void emu_do_create(emu_t *e, emu_ctx_t *c);
void emu_do_update(emu_t *e, emu_ctx_t *c);
void emu_do_patch(emu_t *e, emu_ctx_t *c);
void emu_do_delete(emu_t *e, emu_ctx_t *c);
void emu_do_deletecollection(emu_t *e, emu_ctx_t *c);
/* scale.c: /scale of apps/v1 Deployments and of CRDs with subresources.scale. */
int emu_is_scalable(const emu_rtype_t *rt);
void emu_do_scale(emu_t *e, emu_ctx_t *c);

#endif /* KUALA_APISERVER_EMU_INTERNAL_H */
