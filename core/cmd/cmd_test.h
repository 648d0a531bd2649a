/*
 * cmd_test.h: `kuala test`, busted specs of a bundle with the SDK on the path.
 */
#ifndef KUALA_CMD_TEST_H
#define KUALA_CMD_TEST_H

/* `kuala test [DIR] [-- BUSTED_ARGS...]`: exec busted; returns only on
 * failure (the process exit status). */
int kuala__cli_test(int argc, char **argv);

#endif /* KUALA_CMD_TEST_H */
