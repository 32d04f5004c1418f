// common.h: error reporting, checked allocation and small helpers shared by every module.
//
// Library functions return 0 on success and -1 on failure, filling a skel_err with a one-line
// message that names the file, the dataset and the problem. Only tools/ print and exit.
// Broken internal invariants go through CHECK, which prints file, line and statement and aborts.
#ifndef SKEL_COMMON_H
#define SKEL_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    char msg[1024];
} skel_err;

// Formats the message into e (if e is not NULL) and returns -1, so callers can write
// `return skel_fail(e, "%s: %s: ...", path, dset);`.
int skel_fail(skel_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "internal error at %s:%d: CHECK(%s) failed\n", __FILE__,     \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

// Allocation that aborts with the size and call site on failure: out-of-memory on the host is
// not a recoverable input error.
void *skel_malloc_(size_t n, const char *file, int line);
void *skel_calloc_(size_t n, size_t size, const char *file, int line);
#define xmalloc(n) skel_malloc_((n), __FILE__, __LINE__)
#define xcalloc(n, s) skel_calloc_((n), (s), __FILE__, __LINE__)

// Wall-clock seconds from a monotonic clock.
double skel_now(void);

#endif
