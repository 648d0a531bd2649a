/*
 * cmd_rbac.h: `kuala rbac`, least-privilege RBAC from the bundles'
 * permissions (kuala/permissions.h).
 */
#ifndef KUALA_CMD_RBAC_H
#define KUALA_CMD_RBAC_H

/* `kuala rbac [--namespace NS] [--service-account NAME]
 * [--impersonate-bundles] DIR...`: load each bundle (no cluster needed) and
 * print the RBAC YAML. Returns the process exit status. */
int kuala__cli_rbac(int argc, char **argv);

#endif /* KUALA_CMD_RBAC_H */
