#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int arg_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        fprintf(stderr, "skel: %s '%s': not an integer\n", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "skel: %s %lld: out of range [%lld, %lld]\n", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_real(const char *flag, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || v != v) {
        fprintf(stderr, "skel: %s '%s': not a number\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_list(const char *flag, const char *s, int **out, int *n) {
    int cap = 16, cnt = 0;
    int *v = malloc(sizeof(int) * cap);
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0) goto bad;
        b = a;
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a) goto bad;
            p = end;
        }
        if (*p == ',') p++;
        else if (*p) goto bad;
        if (b - a > 1000000) goto bad;
        for (long x = a; x <= b; x++) {
            if (cnt == cap) v = realloc(v, sizeof(int) * (cap *= 2));
            v[cnt++] = (int)x;
        }
    }
    if (!cnt) goto bad;
    *out = v;
    *n = cnt;
    return 0;
bad:
    fprintf(stderr, "skel: %s '%s': expected a list like 0,5-7\n", flag, s);
    free(v);
    return -1;
}

const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "skel: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}
