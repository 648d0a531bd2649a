/*
 * lua_cli.h: command-line subcommands served by the Lua runtime.
 */
#ifndef KUALA_LUA_LUA_CLI_H
#define KUALA_LUA_LUA_CLI_H

/* `kuala crd DIR...`: load each bundle (no cluster needed) and print the
 * CRDs it declares as a YAML stream. Returns the process exit status. */
int kuala__lua_cli_crd(int argc, char **argv);

#endif /* KUALA_LUA_LUA_CLI_H */
