// rdb.h: reading the character data of an R lazy-load database (data/Rdata.rdb + Rdata.rdx), as
// shipped by R packages such as janeaustenr and tokenizers, without R.
//
// Rdata.rdx is a gzip'd R serialization (XDR format, version 2 or 3) of a list whose element
// "variables" maps each object's name to (offset, length) in Rdata.rdb. Each .rdb record is a 4-byte
// big-endian uncompressed length followed by a zlib stream holding one serialized object.
// Only character vectors are extracted: their elements joined by newlines (NA elements skipped).
#ifndef SKEL_RDB_H
#define SKEL_RDB_H

#include <stddef.h>

#include "common.h"

typedef struct {
    char name[256];  // the R object's name, e.g. "prideprejudice"
    char *text;      // elements joined with '\n' (NUL-terminated, len + 2 bytes allocated), NULL if not
                     // a character vector
    size_t len;
} rdb_object;

// Reads every object named in rdx_path from rdb_path. *out gets a new array of *n objects (free
// with rdb_free). Fails naming the file and object for a bad gzip/zlib stream, a serialization
// other than XDR, or an R type the reader does not know.
int rdb_read(const char *rdb_path, const char *rdx_path, rdb_object **out, int *n, skel_err *e);
void rdb_free(rdb_object *objs, int n);

// Plain text from a Project Gutenberg file, in place: drops a UTF-8 byte-order mark, turns CRLF
// into LF, keeps what lies between the "*** START OF ..." line (and a following "Produced by"
// paragraph) and the "End of (the) Project Gutenberg" / "*** END OF" line, and trims blank lines at
// both ends, ending with one newline. Text without the markers is only normalised. The buffer must
// hold len + 2 bytes. Returns the new length.
size_t gutenberg_strip(char *text, size_t len);

#endif
