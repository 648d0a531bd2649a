/*
 * kubeconfig.h: build a kuala_client_config_t the way kubectl does.
 *
 * Resolution order (kuala_kubeconfig_load):
 *   1. an explicit path (--kubeconfig): that file only, it must exist;
 *   2. $KUBECONFIG: a ':'-separated list of files, merged in order, missing
 *      files skipped; for maps (clusters, users, contexts by name) and for
 *      scalar fields (current-context) the FIRST file to set a value wins;
 *   3. ~/.kube/config ($HOME).
 * The context is `context` when given, else current-context. The cluster
 * and user it names supply server, CA (certificate-authority[-data]),
 * insecure-skip-tls-verify, tls-server-name, token, tokenFile,
 * client-certificate[-data], client-key[-data], username/password and exec.
 * Relative file paths are resolved against the directory of the file that
 * defined them. *-data fields are base64 and are decoded here.
 *
 * Errors: KUALA_EINVAL (malformed YAML, a field of the wrong type, bad
 * base64, missing context/cluster/user), KUALA_ENOENT (no file found). The
 * message in *errmsg (owned by the caller, free with kuala_free; may be NULL
 * on success) names the file and the field, e.g.
 *   "/tmp/k.yaml: users[0].user.client-key-data: invalid base64".
 */
#ifndef KUALA_KUBECONFIG_H
#define KUALA_KUBECONFIG_H

#include "kuala/client.h"

typedef struct {
  const char *path;    /* --kubeconfig; NULL = $KUBECONFIG, then ~/.kube/config */
  const char *context; /* --context; NULL = current-context */
  const char *ns;      /* --namespace override; NULL = the context's */
} kuala_kubeconfig_opts_t;

/* Fill `cfg` (initialised by this call; free with kuala_client_config_free
 * even on error). `opts` may be NULL. */
int kuala_kubeconfig_load(kuala_client_config_t *cfg, const kuala_kubeconfig_opts_t *opts,
                          char **errmsg);

/* Parse one kubeconfig held in memory (for tests and embedded configs);
 * `name` labels error messages and `dir` resolves relative paths. */
int kuala_kubeconfig_load_data(kuala_client_config_t *cfg, const char *data, size_t len,
                               const char *name, const char *dir, const char *context,
                               char **errmsg);

/* In-cluster config: KUBERNETES_SERVICE_HOST/PORT, and in `sa_dir` (NULL =
 * /var/run/secrets/kubernetes.io/serviceaccount) the files token (used as
 * token_file, so rotation is picked up), ca.crt and namespace.
 * KUALA_ENOENT when not running in a cluster. */
int kuala_kubeconfig_in_cluster(kuala_client_config_t *cfg, const char *sa_dir, char **errmsg);

/* Run the exec credential plugin of `cfg` synchronously (startup only: it
 * blocks) and return its token and expiry (unix seconds, 0 = none). The
 * client itself runs the plugin asynchronously. */
int kuala_kubeconfig_exec(const kuala_client_config_t *cfg, char **token, int64_t *expiry,
                          char **errmsg);

#endif /* KUALA_KUBECONFIG_H */
