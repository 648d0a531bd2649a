/*
 * cmd_bundle.h: `kuala bundle DIR` prints the ConfigMap that ships a bundle.
 */
#ifndef KUALA_CMD_BUNDLE_H
#define KUALA_CMD_BUNDLE_H

/* argv[0] is "bundle". Returns the process exit status. */
int kuala__cli_bundle(int argc, char **argv);

#endif /* KUALA_CMD_BUNDLE_H */
