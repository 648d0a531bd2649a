/*
 * cmd_crd.h: `kuala crd`, served by the Lua runtime.
 */
#ifndef KUALA_CMD_CRD_H
#define KUALA_CMD_CRD_H

/* `kuala crd DIR...`: load each bundle (no cluster needed) and print the
 * CRDs it declares as a YAML stream. Returns the process exit status. */
int kuala__cli_crd(int argc, char **argv);

#endif /* KUALA_CMD_CRD_H */
