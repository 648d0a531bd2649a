/*
 * protobuf.c: a table-driven decoder from the Kubernetes protobuf wire
 * format to JSON for the built-in kinds kubectl's generators create.
 *
 * Each message type is a table of fields (number, JSON name, how to decode).
 * The decoder walks the wire format once: known fields are converted, zero
 * values of singular fields are skipped (gogo-protobuf writes them all, and
 * JSON's omitempty drops them), unknown fields are accepted only when they
 * carry a zero value, and anything else is an error naming the field. All
 * lengths are checked against the buffer; nesting is bounded.
 *
 * Field numbers come from k8s.io/api and k8s.io/apimachinery generated.proto
 * and were checked against bodies captured from kubectl 1.32.
 */
#include "protobuf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"

#define PB_MAX_DEPTH 32

typedef enum {
  PB_STR,    /* string */
  PB_BYTES,  /* bytes → base64 string */
  PB_INT,    /* varint int32/int64 */
  PB_BOOL,   /* varint bool */
  PB_MSG,    /* nested message → object */
  PB_MAP_SS, /* map<string,string> → object */
  PB_MAP_SB, /* map<string,bytes> → object of base64 strings */
  PB_MAP_SQ, /* map<string,Quantity> → object of strings */
  PB_TIME,   /* metav1.Time → RFC 3339 string */
  PB_IOS     /* intstr.IntOrString → integer or string */
} pb_kind_t;

#define PB_REPEATED 1
#define PB_KEEPZERO 2 /* pointer field: a zero value is meaningful */

typedef struct pb_msg_s pb_msg_t;

typedef struct {
  int num;
  const char *json;
  pb_kind_t kind;
  int flags;
  const pb_msg_t *msg;
} pb_field_t;

struct pb_msg_s {
  const char *name;
  const pb_field_t *fields;
};

/* ------------------------------------------------------------ schemas */

#define END                  \
  {                          \
    0, NULL, PB_STR, 0, NULL \
  }

static const pb_field_t owner_ref_f[] = {{1, "kind", PB_STR, 0, NULL},
                                         {3, "name", PB_STR, 0, NULL},
                                         {4, "uid", PB_STR, 0, NULL},
                                         {5, "apiVersion", PB_STR, 0, NULL},
                                         {6, "controller", PB_BOOL, PB_KEEPZERO, NULL},
                                         {7, "blockOwnerDeletion", PB_BOOL, PB_KEEPZERO, NULL},
                                         END};
static const pb_msg_t owner_ref_m = {"OwnerReference", owner_ref_f};

static const pb_field_t meta_f[] = {{1, "name", PB_STR, 0, NULL},
                                    {2, "generateName", PB_STR, 0, NULL},
                                    {3, "namespace", PB_STR, 0, NULL},
                                    {4, "selfLink", PB_STR, 0, NULL},
                                    {5, "uid", PB_STR, 0, NULL},
                                    {6, "resourceVersion", PB_STR, 0, NULL},
                                    {7, "generation", PB_INT, 0, NULL},
                                    {8, "creationTimestamp", PB_TIME, 0, NULL},
                                    {9, "deletionTimestamp", PB_TIME, 0, NULL},
                                    {10, "deletionGracePeriodSeconds", PB_INT, PB_KEEPZERO, NULL},
                                    {11, "labels", PB_MAP_SS, 0, NULL},
                                    {12, "annotations", PB_MAP_SS, 0, NULL},
                                    {13, "ownerReferences", PB_MSG, PB_REPEATED, &owner_ref_m},
                                    {14, "finalizers", PB_STR, PB_REPEATED, NULL},
                                    END};
static const pb_msg_t meta_m = {"ObjectMeta", meta_f};

static const pb_field_t empty_f[] = {END};
static const pb_msg_t status_m = {"status", empty_f};

static const pb_field_t configmap_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                         {2, "data", PB_MAP_SS, 0, NULL},
                                         {3, "binaryData", PB_MAP_SB, 0, NULL},
                                         {4, "immutable", PB_BOOL, PB_KEEPZERO, NULL},
                                         END};
static const pb_field_t secret_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                      {2, "data", PB_MAP_SB, 0, NULL},
                                      {3, "type", PB_STR, 0, NULL},
                                      {4, "stringData", PB_MAP_SS, 0, NULL},
                                      {5, "immutable", PB_BOOL, PB_KEEPZERO, NULL},
                                      END};

static const pb_field_t ns_spec_f[] = {{1, "finalizers", PB_STR, PB_REPEATED, NULL}, END};
static const pb_msg_t ns_spec_m = {"NamespaceSpec", ns_spec_f};
static const pb_field_t ns_status_f[] = {{1, "phase", PB_STR, 0, NULL}, END};
static const pb_msg_t ns_status_m = {"NamespaceStatus", ns_status_f};
static const pb_field_t namespace_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                         {2, "spec", PB_MSG, 0, &ns_spec_m},
                                         {3, "status", PB_MSG, 0, &ns_status_m},
                                         END};

static const pb_field_t objref_f[] = {
    {1, "kind", PB_STR, 0, NULL},       {2, "namespace", PB_STR, 0, NULL},
    {3, "name", PB_STR, 0, NULL},       {4, "uid", PB_STR, 0, NULL},
    {5, "apiVersion", PB_STR, 0, NULL}, {6, "resourceVersion", PB_STR, 0, NULL},
    {7, "fieldPath", PB_STR, 0, NULL},  END};
static const pb_msg_t objref_m = {"ObjectReference", objref_f};
static const pb_field_t localref_f[] = {{1, "name", PB_STR, 0, NULL}, END};
static const pb_msg_t localref_m = {"LocalObjectReference", localref_f};
static const pb_field_t sa_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                  {2, "secrets", PB_MSG, PB_REPEATED, &objref_m},
                                  {3, "imagePullSecrets", PB_MSG, PB_REPEATED, &localref_m},
                                  {4, "automountServiceAccountToken", PB_BOOL, PB_KEEPZERO, NULL},
                                  END};

static const pb_field_t rule_f[] = {{1, "verbs", PB_STR, PB_REPEATED, NULL},
                                    {2, "apiGroups", PB_STR, PB_REPEATED, NULL},
                                    {3, "resources", PB_STR, PB_REPEATED, NULL},
                                    {4, "resourceNames", PB_STR, PB_REPEATED, NULL},
                                    {5, "nonResourceURLs", PB_STR, PB_REPEATED, NULL},
                                    END};
static const pb_msg_t rule_m = {"PolicyRule", rule_f};
static const pb_field_t role_f[] = {
    {1, "metadata", PB_MSG, 0, &meta_m}, {2, "rules", PB_MSG, PB_REPEATED, &rule_m}, END};

static const pb_field_t subject_f[] = {{1, "kind", PB_STR, 0, NULL},
                                       {2, "apiGroup", PB_STR, 0, NULL},
                                       {3, "name", PB_STR, 0, NULL},
                                       {4, "namespace", PB_STR, 0, NULL},
                                       END};
static const pb_msg_t subject_m = {"Subject", subject_f};
static const pb_field_t roleref_f[] = {{1, "apiGroup", PB_STR, 0, NULL},
                                       {2, "kind", PB_STR, 0, NULL},
                                       {3, "name", PB_STR, 0, NULL},
                                       END};
static const pb_msg_t roleref_m = {"RoleRef", roleref_f};
static const pb_field_t binding_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                       {2, "subjects", PB_MSG, PB_REPEATED, &subject_m},
                                       {3, "roleRef", PB_MSG, 0, &roleref_m},
                                       END};

static const pb_field_t selreq_f[] = {{1, "key", PB_STR, 0, NULL},
                                      {2, "operator", PB_STR, 0, NULL},
                                      {3, "values", PB_STR, PB_REPEATED, NULL},
                                      END};
static const pb_msg_t selreq_m = {"LabelSelectorRequirement", selreq_f};
static const pb_field_t selector_f[] = {{1, "matchLabels", PB_MAP_SS, 0, NULL},
                                        {2, "matchExpressions", PB_MSG, PB_REPEATED, &selreq_m},
                                        END};
static const pb_msg_t selector_m = {"LabelSelector", selector_f};

static const pb_field_t cport_f[] = {
    {1, "name", PB_STR, 0, NULL},          {2, "hostPort", PB_INT, 0, NULL},
    {3, "containerPort", PB_INT, 0, NULL}, {4, "protocol", PB_STR, 0, NULL},
    {5, "hostIP", PB_STR, 0, NULL},        END};
static const pb_msg_t cport_m = {"ContainerPort", cport_f};
static const pb_field_t env_f[] = {
    {1, "name", PB_STR, 0, NULL}, {2, "value", PB_STR, 0, NULL}, END};
static const pb_msg_t env_m = {"EnvVar", env_f};
static const pb_field_t resources_f[] = {
    {1, "limits", PB_MAP_SQ, 0, NULL}, {2, "requests", PB_MAP_SQ, 0, NULL}, END};
static const pb_msg_t resources_m = {"ResourceRequirements", resources_f};
static const pb_field_t container_f[] = {{1, "name", PB_STR, 0, NULL},
                                         {2, "image", PB_STR, 0, NULL},
                                         {3, "command", PB_STR, PB_REPEATED, NULL},
                                         {4, "args", PB_STR, PB_REPEATED, NULL},
                                         {5, "workingDir", PB_STR, 0, NULL},
                                         {6, "ports", PB_MSG, PB_REPEATED, &cport_m},
                                         {7, "env", PB_MSG, PB_REPEATED, &env_m},
                                         {8, "resources", PB_MSG, 0, &resources_m},
                                         {13, "terminationMessagePath", PB_STR, 0, NULL},
                                         {14, "imagePullPolicy", PB_STR, 0, NULL},
                                         {16, "stdin", PB_BOOL, 0, NULL},
                                         {17, "stdinOnce", PB_BOOL, 0, NULL},
                                         {18, "tty", PB_BOOL, 0, NULL},
                                         {20, "terminationMessagePolicy", PB_STR, 0, NULL},
                                         END};
static const pb_msg_t container_m = {"Container", container_f};
static const pb_field_t podspec_f[] = {
    {2, "containers", PB_MSG, PB_REPEATED, &container_m},
    {3, "restartPolicy", PB_STR, 0, NULL},
    {4, "terminationGracePeriodSeconds", PB_INT, PB_KEEPZERO, NULL},
    {6, "dnsPolicy", PB_STR, 0, NULL},
    {7, "nodeSelector", PB_MAP_SS, 0, NULL},
    {8, "serviceAccountName", PB_STR, 0, NULL},
    {10, "nodeName", PB_STR, 0, NULL},
    {15, "imagePullSecrets", PB_MSG, PB_REPEATED, &localref_m},
    {19, "schedulerName", PB_STR, 0, NULL},
    {20, "initContainers", PB_MSG, PB_REPEATED, &container_m},
    END};
static const pb_msg_t podspec_m = {"PodSpec", podspec_f};
static const pb_field_t template_f[] = {
    {1, "metadata", PB_MSG, 0, &meta_m}, {2, "spec", PB_MSG, 0, &podspec_m}, END};
static const pb_msg_t template_m = {"PodTemplateSpec", template_f};
static const pb_field_t rolling_f[] = {
    {1, "maxUnavailable", PB_IOS, 0, NULL}, {2, "maxSurge", PB_IOS, 0, NULL}, END};
static const pb_msg_t rolling_m = {"RollingUpdateDeployment", rolling_f};
static const pb_field_t strategy_f[] = {
    {1, "type", PB_STR, 0, NULL}, {2, "rollingUpdate", PB_MSG, 0, &rolling_m}, END};
static const pb_msg_t strategy_m = {"DeploymentStrategy", strategy_f};
static const pb_field_t depspec_f[] = {{1, "replicas", PB_INT, PB_KEEPZERO, NULL},
                                       {2, "selector", PB_MSG, 0, &selector_m},
                                       {3, "template", PB_MSG, 0, &template_m},
                                       {4, "strategy", PB_MSG, 0, &strategy_m},
                                       {5, "minReadySeconds", PB_INT, 0, NULL},
                                       {6, "revisionHistoryLimit", PB_INT, PB_KEEPZERO, NULL},
                                       {7, "paused", PB_BOOL, 0, NULL},
                                       {9, "progressDeadlineSeconds", PB_INT, PB_KEEPZERO, NULL},
                                       END};
static const pb_msg_t depspec_m = {"DeploymentSpec", depspec_f};
static const pb_field_t deployment_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                          {2, "spec", PB_MSG, 0, &depspec_m},
                                          {3, "status", PB_MSG, 0, &status_m},
                                          END};

static const pb_field_t sport_f[] = {
    {1, "name", PB_STR, 0, NULL},     {2, "protocol", PB_STR, 0, NULL},
    {3, "port", PB_INT, 0, NULL},     {4, "targetPort", PB_IOS, 0, NULL},
    {5, "nodePort", PB_INT, 0, NULL}, END};
static const pb_msg_t sport_m = {"ServicePort", sport_f};
static const pb_field_t svcspec_f[] = {{1, "ports", PB_MSG, PB_REPEATED, &sport_m},
                                       {2, "selector", PB_MAP_SS, 0, NULL},
                                       {3, "clusterIP", PB_STR, 0, NULL},
                                       {4, "type", PB_STR, 0, NULL},
                                       {5, "externalIPs", PB_STR, PB_REPEATED, NULL},
                                       {7, "sessionAffinity", PB_STR, 0, NULL},
                                       {10, "externalName", PB_STR, 0, NULL},
                                       END};
static const pb_msg_t svcspec_m = {"ServiceSpec", svcspec_f};
static const pb_field_t lbstatus_f[] = {END};
static const pb_msg_t lbstatus_m = {"LoadBalancerStatus", lbstatus_f};
static const pb_field_t svcstatus_f[] = {{1, "loadBalancer", PB_MSG, 0, &lbstatus_m}, END};
static const pb_msg_t svcstatus_m = {"ServiceStatus", svcstatus_f};
static const pb_field_t service_f[] = {{1, "metadata", PB_MSG, 0, &meta_m},
                                       {2, "spec", PB_MSG, 0, &svcspec_m},
                                       {3, "status", PB_MSG, 0, &svcstatus_m},
                                       END};

typedef struct {
  const char *api_version;
  const char *kind;
  pb_msg_t msg;
} pb_kind_entry_t;

static const pb_kind_entry_t kinds[] = {
    {"v1", "ConfigMap", {"ConfigMap", configmap_f}},
    {"v1", "Secret", {"Secret", secret_f}},
    {"v1", "Namespace", {"Namespace", namespace_f}},
    {"v1", "ServiceAccount", {"ServiceAccount", sa_f}},
    {"v1", "Service", {"Service", service_f}},
    {"apps/v1", "Deployment", {"Deployment", deployment_f}},
    {"rbac.authorization.k8s.io/v1", "Role", {"Role", role_f}},
    {"rbac.authorization.k8s.io/v1", "ClusterRole", {"ClusterRole", role_f}},
    {"rbac.authorization.k8s.io/v1", "RoleBinding", {"RoleBinding", binding_f}},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", {"ClusterRoleBinding", binding_f}},
};

/* --------------------------------------------------------- wire format */

typedef struct {
  const unsigned char *p;
  const unsigned char *end;
} pb_reader_t;

typedef struct {
  kuala_apierr_t *err;
  int rc;
} pb_ctx_t;

/* Record the first error: "malformed protobuf body: <what> <name>". */
static int pb_fail(pb_ctx_t *c, const char *what, const char *name)
{
  if (!c->rc) {
    c->rc = kuala__apierr_set(c->err, 400, NULL, "malformed protobuf body: %s %s", what, name);
  }
  return -1;
}

static int read_varint(pb_reader_t *r, uint64_t *out)
{
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end) {
      return -1;
    }
    unsigned char b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

/* Read a field header and, for length-delimited fields, its bytes. */
typedef struct {
  int num;
  int wire;
  uint64_t value;           /* varint */
  const unsigned char *buf; /* length-delimited */
  size_t len;
} pb_item_t;

static int read_item(pb_reader_t *r, pb_item_t *it)
{
  uint64_t key;
  if (read_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 536870911) {
    return -1;
  }
  it->num = (int)(key >> 3);
  it->wire = (int)(key & 7);
  it->value = 0;
  it->buf = NULL;
  it->len = 0;
  switch (it->wire) {
    case 0:
      return read_varint(r, &it->value);
    case 1:
      if (r->end - r->p < 8) {
        return -1;
      }
      it->buf = r->p;
      it->len = 8;
      r->p += 8;
      return 0;
    case 2: {
      uint64_t n;
      if (read_varint(r, &n) || n > (uint64_t)(r->end - r->p)) {
        return -1;
      }
      it->buf = r->p;
      it->len = (size_t)n;
      r->p += n;
      return 0;
    }
    case 5:
      if (r->end - r->p < 4) {
        return -1;
      }
      it->buf = r->p;
      it->len = 4;
      r->p += 4;
      return 0;
    default:
      return -1;
  }
}

static int item_is_zero(const pb_item_t *it)
{
  if (it->wire == 0) {
    return it->value == 0;
  }
  if (it->wire == 2) {
    return it->len == 0;
  }
  for (size_t i = 0; i < it->len; i++) {
    if (it->buf[i]) {
      return 0;
    }
  }
  return 1;
}

static const pb_field_t *find_field(const pb_msg_t *m, int num)
{
  for (const pb_field_t *f = m->fields; f->json; f++) {
    if (f->num == num) {
      return f;
    }
  }
  return NULL;
}

static char *base64(const unsigned char *p, size_t n)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) {
      v |= (uint32_t)p[i + 1] << 8;
    }
    if (i + 2 < n) {
      v |= p[i + 2];
    }
    kuala_buf_putc(&b, tab[(v >> 18) & 63]);
    kuala_buf_putc(&b, tab[(v >> 12) & 63]);
    kuala_buf_putc(&b, i + 1 < n ? tab[(v >> 6) & 63] : '=');
    kuala_buf_putc(&b, i + 2 < n ? tab[v & 63] : '=');
  }
  char *s = kuala_buf_take(&b, NULL);
  return s ? s : kuala_strdup("");
}

static json_object *decode_msg(pb_ctx_t *c, const pb_msg_t *m, const unsigned char *buf, size_t len,
                               int depth);

/* A map entry {1: key, 2: value}. */
static int decode_map_entry(pb_ctx_t *c, const pb_field_t *f, const pb_item_t *it, json_object *map,
                            int depth)
{
  pb_reader_t r = {it->buf, it->buf + it->len};
  const unsigned char *kp = NULL, *vp = NULL;
  size_t kl = 0, vl = 0;
  while (r.p < r.end) {
    pb_item_t e;
    if (read_item(&r, &e) || e.wire != 2) {
      return pb_fail(c, "bad map entry in field", f->json);
    }
    if (e.num == 1) {
      kp = e.buf;
      kl = e.len;
    } else if (e.num == 2) {
      vp = e.buf;
      vl = e.len;
    }
  }
  char *key = kuala_strndup(kp ? (const char *)kp : "", kl);
  json_object *v = NULL;
  if (f->kind == PB_MAP_SS) {
    v = json_object_new_string_len(vp ? (const char *)vp : "", (int)vl);
  } else if (f->kind == PB_MAP_SB) {
    char *s = base64(vp, vl);
    v = json_object_new_string(s);
    kuala_free(s);
  } else { /* Quantity {1: string} */
    pb_reader_t q = {vp, vp + vl};
    const unsigned char *sp = NULL;
    size_t sl = 0;
    while (q.p < q.end) {
      pb_item_t e;
      if (read_item(&q, &e)) {
        kuala_free(key);
        return pb_fail(c, "bad quantity in field", f->json);
      }
      if (e.num == 1 && e.wire == 2) {
        sp = e.buf;
        sl = e.len;
      }
    }
    v = json_object_new_string_len(sp ? (const char *)sp : "", (int)sl);
  }
  (void)depth;
  json_object_object_add(map, key, v);
  kuala_free(key);
  return 0;
}

static json_object *decode_time(const pb_item_t *it)
{
  pb_reader_t r = {it->buf, it->buf + it->len};
  int64_t secs = 0;
  while (r.p < r.end) {
    pb_item_t e;
    if (read_item(&r, &e)) {
      return NULL;
    }
    if (e.num == 1 && e.wire == 0) {
      secs = (int64_t)e.value;
    }
  }
  if (secs == 0) {
    return NULL;
  }
  time_t t = (time_t)secs;
  struct tm tm;
  char out[32];
  if (!gmtime_r(&t, &tm) || !strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
    return NULL;
  }
  return json_object_new_string(out);
}

static json_object *decode_ios(const pb_item_t *it)
{
  pb_reader_t r = {it->buf, it->buf + it->len};
  uint64_t type = 0, iv = 0;
  const unsigned char *sp = NULL;
  size_t sl = 0;
  while (r.p < r.end) {
    pb_item_t e;
    if (read_item(&r, &e)) {
      return NULL;
    }
    if (e.num == 1 && e.wire == 0) {
      type = e.value;
    } else if (e.num == 2 && e.wire == 0) {
      iv = e.value;
    } else if (e.num == 3 && e.wire == 2) {
      sp = e.buf;
      sl = e.len;
    }
  }
  if (type == 1) {
    return json_object_new_string_len(sp ? (const char *)sp : "", (int)sl);
  }
  return json_object_new_int64((int32_t)(uint32_t)iv);
}

/* Decode one field occurrence into obj. Returns 0 or -1 (error recorded). */
static int decode_field(pb_ctx_t *c, const pb_msg_t *m, const pb_field_t *f, const pb_item_t *it,
                        json_object *obj, int depth)
{
  int want_wire = (f->kind == PB_INT || f->kind == PB_BOOL) ? 0 : 2;
  if (it->wire != want_wire) {
    return pb_fail(c, "wrong wire type for field", f->json);
  }
  int repeated = (f->flags & PB_REPEATED) != 0;
  if (!repeated && !(f->flags & PB_KEEPZERO) && item_is_zero(it) && f->kind != PB_MSG) {
    return 0; /* omitempty */
  }
  json_object *v = NULL;
  switch (f->kind) {
    case PB_STR:
      v = json_object_new_string_len((const char *)it->buf, (int)it->len);
      break;
    case PB_BYTES: {
      char *s = base64(it->buf, it->len);
      v = json_object_new_string(s);
      kuala_free(s);
      break;
    }
    case PB_INT:
      v = json_object_new_int64((int64_t)it->value);
      break;
    case PB_BOOL:
      v = json_object_new_boolean(it->value != 0);
      break;
    case PB_MSG:
      v = decode_msg(c, f->msg, it->buf, it->len, depth + 1);
      if (!v) {
        return -1;
      }
      break;
    case PB_MAP_SS:
    case PB_MAP_SB:
    case PB_MAP_SQ: {
      json_object *map = NULL;
      if (!json_object_object_get_ex(obj, f->json, &map)) {
        map = json_object_new_object();
        json_object_object_add(obj, f->json, map);
      }
      return decode_map_entry(c, f, it, map, depth);
    }
    case PB_TIME:
      v = decode_time(it);
      if (!v) {
        return 0;
      }
      break;
    case PB_IOS:
      v = decode_ios(it);
      if (!v) {
        return pb_fail(c, "bad IntOrString in field", f->json);
      }
      break;
  }
  (void)m;
  if (repeated) {
    json_object *arr = NULL;
    if (!json_object_object_get_ex(obj, f->json, &arr)) {
      arr = json_object_new_array();
      json_object_object_add(obj, f->json, arr);
    }
    json_object_array_add(arr, v);
  } else {
    json_object_object_add(obj, f->json, v);
  }
  return 0;
}

static json_object *decode_msg(pb_ctx_t *c, const pb_msg_t *m, const unsigned char *buf, size_t len,
                               int depth)
{
  if (depth > PB_MAX_DEPTH) {
    pb_fail(c, "nested too deeply in", m->name);
    return NULL;
  }
  json_object *obj = json_object_new_object();
  pb_reader_t r = {buf, buf + len};
  while (r.p < r.end) {
    pb_item_t it;
    if (read_item(&r, &it)) {
      pb_fail(c, "cannot read", m->name);
      json_object_put(obj);
      return NULL;
    }
    const pb_field_t *f = find_field(m, it.num);
    if (!f) {
      if (item_is_zero(&it)) {
        continue; /* an unset field the encoder wrote anyway */
      }
      if (!c->rc) {
        c->rc = kuala__apierr_set(c->err, 400, NULL,
                                  "protobuf field %d of %s is not supported by this emulator; "
                                  "send the object as JSON instead (e.g. kubectl create -f, or "
                                  "kubectl ... --dry-run=client -o yaml | kubectl apply -f -)",
                                  it.num, m->name);
      }
      json_object_put(obj);
      return NULL;
    }
    if (decode_field(c, m, f, &it, obj, depth)) {
      json_object_put(obj);
      return NULL;
    }
  }
  return obj;
}

/* ------------------------------------------------------------- public */

int kuala__pb_is_protobuf(const char *content_type)
{
  if (!content_type) {
    return 0;
  }
  while (*content_type == ' ') {
    content_type++;
  }
  size_t n = strcspn(content_type, ";");
  while (n > 0 && content_type[n - 1] == ' ') {
    n--;
  }
  return n == strlen(KUALA_PB_MEDIA_TYPE) && strncasecmp(content_type, KUALA_PB_MEDIA_TYPE, n) == 0;
}

int kuala__pb_decode(json_object **out, const unsigned char *body, size_t len, kuala_apierr_t *err)
{
  *out = NULL;
  static const unsigned char magic[4] = {'k', '8', 's', 0};
  if (len < 4 || memcmp(body, magic, 4) != 0) {
    return kuala__apierr_set(err, 400, NULL,
                             "the protobuf body does not start with the Kubernetes magic "
                             "number");
  }
  /* runtime.Unknown: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType */
  pb_reader_t r = {body + 4, body + len};
  const unsigned char *raw = NULL;
  size_t raw_len = 0;
  char *api_version = NULL, *kind = NULL;
  int rc = 0;
  while (r.p < r.end && !rc) {
    pb_item_t it;
    if (read_item(&r, &it)) {
      rc = kuala__apierr_set(err, 400, NULL, "malformed protobuf envelope");
      break;
    }
    if (it.num == 1 && it.wire == 2) {
      pb_reader_t t = {it.buf, it.buf + it.len};
      while (t.p < t.end) {
        pb_item_t e;
        if (read_item(&t, &e) || e.wire != 2) {
          rc = kuala__apierr_set(err, 400, NULL, "malformed protobuf type meta");
          break;
        }
        if (e.num == 1) {
          kuala_free(api_version);
          api_version = kuala_strndup((const char *)e.buf, e.len);
        } else if (e.num == 2) {
          kuala_free(kind);
          kind = kuala_strndup((const char *)e.buf, e.len);
        }
      }
    } else if (it.num == 2 && it.wire == 2) {
      raw = it.buf;
      raw_len = it.len;
    } else if ((it.num == 3 || it.num == 4) && it.wire == 2) {
      if (it.len > 0 && it.num == 3) {
        rc = kuala__apierr_set(err, 415, "UnsupportedMediaType",
                               "protobuf content encoding is not supported");
      }
    }
  }
  const pb_kind_entry_t *k = NULL;
  for (size_t i = 0; !rc && i < sizeof kinds / sizeof kinds[0]; i++) {
    if (api_version && kind && strcmp(kinds[i].api_version, api_version) == 0 &&
        strcmp(kinds[i].kind, kind) == 0) {
      k = &kinds[i];
    }
  }
  if (!rc && !k) {
    rc = kuala__apierr_set(err, 415, "UnsupportedMediaType",
                           "the emulator cannot decode %s %s from protobuf; send it as JSON "
                           "(accepted media types include: application/json, application/yaml)",
                           api_version ? api_version : "?", kind ? kind : "?");
  }
  if (!rc) {
    pb_ctx_t c = {err, 0};
    json_object *obj = decode_msg(&c, &k->msg, raw ? raw : (const unsigned char *)"", raw_len, 0);
    if (!obj) {
      rc = c.rc ? c.rc : kuala__apierr_set(err, 400, NULL, "malformed protobuf body");
    } else {
      /* apiVersion and kind first, as a JSON client would send them. */
      json_object *res = json_object_new_object();
      json_object_object_add(res, "apiVersion", json_object_new_string(api_version));
      json_object_object_add(res, "kind", json_object_new_string(kind));
      json_object_object_foreach(obj, key, val)
      {
        json_object_object_add(res, key, json_object_get(val));
      }
      json_object_put(obj);
      *out = res;
    }
  }
  kuala_free(api_version);
  kuala_free(kind);
  return rc;
}
