/*
 * auth.h: the emulator's authentication and authorization filter
 * (--token, --token-auth-file, --authorization-mode=RBAC, impersonation,
 * SelfSubjectAccessReview). The decisions live in authz.c.
 */
#ifndef KUALA_APISERVER_AUTH_H
#define KUALA_APISERVER_AUTH_H

#include <stddef.h>

#include "emu.h"

/* Configure from the command line: `token_file` (may be NULL) is read
 * now; `mode` is NULL, "AlwaysAllow" or "RBAC" (a comma list may name both;
 * RBAC wins). 0, or -1 with a message in err. */
int emu_auth_configure(emu_t *e, const char *token_file, const char *mode, char *err,
                       size_t errlen);

/* Run before routing. Returns 1 when the request was answered here (401,
 * 403, 400 for bad impersonation headers, or a SelfSubjectAccessReview),
 * 0 when it goes on as the authenticated user. */
int emu_auth_filter(emu_t *e, kuala__httpd_req_t *req);

/* 403 answers given so far (also logged on stderr, one line each). */
unsigned long emu_auth_forbidden_count(void);

#endif /* KUALA_APISERVER_AUTH_H */
