// tokenizer.h: byte-level BPE (GPT-2 style) built from a GGUF file's vocabulary and merges.
//
// Encoding, as llama.cpp and HF tokenizers do it for tokenizer.ggml.model = "gpt2":
//   1. pre-tokenisation: for pre = "smollm" (and the other "digits first" variants) every \p{N}
//      code point is split off on its own first; then each piece is split by the GPT-2 pattern
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   2. each pre-token's bytes are mapped to printable code points (GPT-2's bytes_to_unicode), one
//      symbol per byte, and adjacent symbols are merged lowest merge rank first.
// Bytes the vocabulary has no token for (a few ASCII control characters in SmolLM2) are dropped.
// Special/control tokens in the text are not parsed: "<|im_start|>" is tokenised as plain text.
// Decoding maps each token's code points back to bytes; control tokens decode to nothing.
#ifndef SKEL_TOKENIZER_H
#define SKEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "gguf.h"

typedef enum { TOKENIZER_PRE_GPT2 = 0, TOKENIZER_PRE_DIGITS = 1 } tokenizer_pre;

typedef struct {
    int n_vocab;
    char **text;       // (n_vocab) token strings as stored (byte-level code points, UTF-8)
    int *text_len;     // (n_vocab)
    int32_t *type;     // (n_vocab) 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
    char **bytes;      // (n_vocab) decoded bytes of each token (control tokens: empty)
    int *bytes_len;    // (n_vocab)
    int32_t byte_tok[256];  // token of each single byte, -1 if the vocabulary has none
    tokenizer_pre pre;
    int bos, eos;      // -1 when the file names none
    int add_bos;       // tokenizer.ggml.add_bos_token
    // open-addressing hash tables
    uint64_t vocab_cap;
    int32_t *vocab_slot;  // (vocab_cap) token id or -1
    uint64_t merge_cap;
    uint64_t *merge_key;  // (merge_cap) left << 32 | right, or UINT64_MAX when empty
    int32_t *merge_rank;  // (merge_cap)
    int32_t *merge_out;   // (merge_cap) the merged token
} tokenizer;

// Builds the tokenizer from tokenizer.ggml.{model,pre,tokens,token_type,merges,bos_token_id,
// eos_token_id,add_bos_token}. Fails naming the file and key for a model other than "gpt2", an
// unknown pre-tokeniser, or a merge whose parts or result are not in the vocabulary.
int tokenizer_init(tokenizer *t, const gguf_file *g, skel_err *e);
void tokenizer_free(tokenizer *t);

// Encodes len bytes of text (any bytes; invalid UTF-8 is kept byte by byte) into *out, a new
// array of *n token ids (caller frees). No BOS is added.
void tokenizer_encode(const tokenizer *t, const char *text, size_t len, int32_t **out, int64_t *n);

// The bytes of a token (not NUL-terminated; *len bytes). NULL for an out-of-range id.
const char *tokenizer_piece(const tokenizer *t, int32_t id, int *len);

// Decodes n tokens into a new NUL-terminated string (caller frees); *len gets its length.
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int64_t n, size_t *len);

#endif
