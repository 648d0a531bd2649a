/*
 * dev_samples.h: `kuala dev` applies each bundle's samples/ directory.
 */
#ifndef KUALA_CMD_DEV_SAMPLES_H
#define KUALA_CMD_DEV_SAMPLES_H

#include <stddef.h>

#include "kuala/engine.h"

/* Server-side apply every document of every *.yaml / *.yml / *.json file
 * in bundle_dir/samples/ through the engine (results are logged). Returns
 * the number of files found. */
size_t kuala__dev_apply_samples(kuala_engine_t *e, const char *bundle_dir);

#endif /* KUALA_CMD_DEV_SAMPLES_H */
