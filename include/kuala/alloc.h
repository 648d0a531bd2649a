/*
 * Allocation wrappers. Out of memory aborts the process with a message: the
 * kubelet restarts us, and no caller carries an untested OOM path.
 */
#ifndef KUALA_ALLOC_H
#define KUALA_ALLOC_H

#include <stddef.h>

void *kuala_malloc(size_t n);
void *kuala_calloc(size_t count, size_t n);
void *kuala_realloc(void *p, size_t n);
char *kuala_strdup(const char *s);
char *kuala_strndup(const char *s, size_t n);
/* Copy of `n` bytes of `p`, plus a NUL byte after them. */
void *kuala_memdup(const void *p, size_t n);
void kuala_free(void *p);

#endif /* KUALA_ALLOC_H */
