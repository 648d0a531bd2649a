/*
 * protobuf: decode the Kubernetes protobuf request bodies that kubectl's
 * typed clients send (Content-Type: application/vnd.kubernetes.protobuf).
 *
 * `kubectl create configmap|secret|namespace|serviceaccount|deployment|
 * service|role|rolebinding|clusterrole|clusterrolebinding` encode the new
 * object in protobuf, not JSON. The body is the 4-byte magic "k8s\0"
 * followed by a runtime.Unknown message whose `raw` field holds the object.
 * This module turns such a body into the equivalent JSON object for the
 * kinds listed in the .c file. Zero-valued fields are treated as absent (the
 * Go encoder writes every non-pointer field). A non-zero field the decoder
 * does not know is refused rather than dropped, so the emulator never stores
 * less than the client sent.
 *
 * Responses stay JSON: kubectl accepts both (it sends
 * `Accept: application/vnd.kubernetes.protobuf,application/json`).
 */
#ifndef KUALA_APISERVER_PROTOBUF_H
#define KUALA_APISERVER_PROTOBUF_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"

/* The protobuf media type, as it appears in Content-Type. */
#define KUALA_PB_MEDIA_TYPE "application/vnd.kubernetes.protobuf"

/* Whether a Content-Type header names the Kubernetes protobuf media type. */
int kuala__pb_is_protobuf(const char *content_type);

/*
 * Decode a protobuf body into a new JSON object (apiVersion and kind from the
 * envelope). Returns 0 with *out set; 400 BadRequest for a malformed body, a
 * missing magic, or a field the decoder does not support (the message names
 * it and suggests sending JSON); 415 UnsupportedMediaType for a kind it
 * cannot decode at all.
 */
int kuala__pb_decode(json_object **out, const unsigned char *body, size_t len, kuala_apierr_t *err);

#endif /* KUALA_APISERVER_PROTOBUF_H */
