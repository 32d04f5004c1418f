// args.h: option parsing helpers shared by the subcommands. Each reports a one-line error naming
// the flag and returns -1 on bad input.
#ifndef SKEL_ARGS_H
#define SKEL_ARGS_H

#include <stdint.h>

// Parses an integer / real flag value; the whole string must be a number.
int arg_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int arg_real(const char *flag, const char *s, double *out);
// Parses a list such as "0,5-7" into a fresh array (*out, *n); every value in [0, max_exclusive)
// unless max_exclusive < 0.
int arg_list(const char *flag, const char *s, int **out, int *n);
// Fetches the value of argv[*i] (advancing *i), or reports that the flag needs a value.
const char *arg_value(int argc, char **argv, int *i);

#endif
