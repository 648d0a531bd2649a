/*
 * fuzz_kubeconfig.c: libFuzzer target for kubeconfig parsing
 * (core/client/kubeconfig.c, YAML through libyaml).
 *
 * Any bytes must give a config or an error message, never a crash, a leak
 * or a read past the input. Relative file references resolve under a
 * directory that does not exist.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  char *errmsg = NULL;
  kuala_kubeconfig_load_data(&cfg, (const char *)data, size, "fuzz", "/nonexistent/kuala-fuzz",
                             NULL, &errmsg);
  kuala_free(errmsg);
  kuala_client_config_free(&cfg);
  return 0;
}
