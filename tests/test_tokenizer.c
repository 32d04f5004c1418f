// test_tokenizer.c: byte-level BPE on a vocabulary the test writes (merge order, digit splitting,
// whitespace rules, round trips on tricky text) and, when data/model is there, the real SmolLM2
// vocabulary against ids from HF tokenizers (tokenizers 0.2x, Digits(individual) + ByteLevel,
// built from the same GGUF's tokens and merges).
#include <unistd.h>

#include "gguf_writer.h"
#include "tokenizer.h"
#include "testutil.h"

#define REAL_GGUF "data/model/SmolLM2-135M-Instruct.Q4_1.gguf"

static const char *TRICKY[] = {
    "",
    "Hello world",
    "  two  spaces,   three\ttab\n\n\nnewlines  \n",
    "In 2024, 3.14159 and 1,000,000 x1y2",
    "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd1\x80\xd1\x83\xd1\x81",
    "emoji \xf0\x9f\x98\x80 and invalid UTF-8 \xff\xfe\xc3 here",
    "don't I'm we're they've she'll he'd DON'T",
    "   \n \t  ",
};

// A vocabulary of the 256 byte symbols plus the results of a few merges.
static void write_vocab(const char *path, const char *pre) {
    char sym[256][4];
    const char *toks[300];
    for (int b = 0; b < 256; b++) gw_byte_symbol(b, sym[b]), toks[b] = sym[b];
    // ids 256.. ; merges in rank order
    const char *extra[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "\xc4\xa0wo", "12", "\xc4\xa0\xc4\xa0"};
    const char *merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "\xc4\xa0w o", "1 2", "\xc4\xa0 \xc4\xa0"};
    for (int i = 0; i < 8; i++) toks[256 + i] = extra[i];
    gw w = {0};
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_str(&w, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(&w, "tokenizer.ggml.pre", pre);
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 264);
    gw_kv_arr_str(&w, "tokenizer.ggml.merges", merges, 8);
    assert_true(gw_write(&w, path) > 0);
}

static void encode(const tokenizer *t, const char *s, int32_t **ids, int64_t *n) { tokenizer_encode(t, s, strlen(s), ids, n); }

static void expect_ids(const tokenizer *t, const char *s, const int32_t *want, int64_t n_want) {
    int32_t *ids;
    int64_t n;
    encode(t, s, &ids, &n);
    int ok = n == n_want && !memcmp(ids, want, (size_t)n * sizeof(int32_t));
    if (!ok) {
        fprintf(stderr, "'%s': got", s);
        for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", expected");
        for (int64_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
    free(ids);
}

static void round_trip(const tokenizer *t, const char *s) {
    int32_t *ids;
    int64_t n;
    size_t len;
    encode(t, s, &ids, &n);
    char *back = tokenizer_decode(t, ids, n, &len);
    assert_int_equal(len, strlen(s));
    assert_memory_equal(back, s, len);
    free(back), free(ids);
}

static void test_synthetic(void **state) {
    char path[] = "/tmp/skel-test-tok-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    for (int k = 0; k < 2; k++) {
        write_vocab(path, k ? "gpt2" : "smollm");
        gguf_file g;
        tokenizer t;
        skel_err e = {{0}};
        assert_int_equal(gguf_open(&g, path, &e), 0);
        if (tokenizer_init(&t, &g, &e)) fprintf(stderr, "%s\n", e.msg), fail();
        // "hello" merges by rank: h e -> he, l l -> ll, he ll -> hell, hell o -> hello.
        // " world": the space joins the word (Ġ w -> Ġw, Ġw o -> Ġwo), then r, l, d.
        expect_ids(&t, "hello world", (int32_t[]){259, 261, 'r', 'l', 'd'}, 5);
        // Digits: "smollm" splits every digit first, so "1 2" never merges; "gpt2" keeps 12 together.
        if (k == 0) expect_ids(&t, "x12", (int32_t[]){'x', '1', '2'}, 3);
        else expect_ids(&t, "x12", (int32_t[]){'x', 262}, 2);
        // Three spaces then a word: \s+(?!\S) takes two (merged ĠĠ), the last one joins "world".
        expect_ids(&t, "a   world", (int32_t[]){'a', 263, 261, 'r', 'l', 'd'}, 6);
        // Spaces at the end of the text stay together.
        expect_ids(&t, "a  ", (int32_t[]){'a', 263}, 2);
        for (size_t i = 0; i < sizeof TRICKY / sizeof TRICKY[0]; i++) round_trip(&t, TRICKY[i]);
        tokenizer_free(&t);
        gguf_close(&g);
    }
    // Unknown pre-tokenizer and model: one-line errors naming the key.
    gw w = {0};
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    gw_write(&w, path);
    gguf_file g;
    tokenizer t;
    skel_err e = {{0}};
    assert_int_equal(gguf_open(&g, path, &e), 0);
    assert_int_equal(tokenizer_init(&t, &g, &e), -1);
    assert_non_null(strstr(e.msg, "tokenizer.ggml.model"));
    gguf_close(&g);
    unlink(path);
}

// Expected ids: HF tokenizers on the same vocabulary and merges (see the file comment).
static const struct {
    const char *text;
    int32_t ids[40];
    int n;
} HF_CASES[] = {
    {"Hello world", {19556, 905}, 2},
    {"  two  spaces,   three\ttab\n\n\nnewlines  \n", {216, 827, 216, 5600, 28, 256, 1296, 197, 15999, 1116, 198, 2241, 5110, 32057}, 14},
    {"In 2024, 3.14159 and 1,000,000 x1y2", {788, 216, 34, 32, 34, 36, 28, 216, 35, 30, 33, 36, 33, 37, 41, 284, 216, 33, 28, 32, 32, 32, 28, 32, 32, 32, 1792, 33, 105, 34}, 30},
    {"café naïve — “quotes” … 日本語 한국어 русский", {83, 1939, 2756, 15486, 46494, 1841, 619, 385, 2346, 573, 5548, 17097, 241, 115, 40993, 179, 120, 248, 216, 33085, 246, 181, 130, 251, 183, 240, 129, 216, 9175, 14714, 9382, 39511, 7872, 24958}, 34},
    {"emoji 😀👍🏽 ∑ x² ½", {391, 33777, 40303, 218, 10813, 235, 231, 10813, 233, 138, 19995, 235, 1792, 19133, 216, 16738}, 16},
    {"don't I'm we're they've she'll he'd DON'T", {12420, 982, 339, 5248, 392, 2316, 502, 3543, 1041, 3060, 384, 6737, 422, 2154, 23, 68}, 16},
    {"The capital of France is", {504, 3575, 282, 4649, 314}, 5},
};

static void test_real_vocab(void **state) {
    if (access(REAL_GGUF, R_OK)) {
        print_message("skipped: %s not found (make model; needs network)\n", REAL_GGUF);
        skip();
    }
    gguf_file g;
    tokenizer t;
    skel_err e = {{0}};
    assert_int_equal(gguf_open(&g, REAL_GGUF, &e), 0);
    if (tokenizer_init(&t, &g, &e)) fprintf(stderr, "%s\n", e.msg), fail();
    assert_int_equal(t.n_vocab, 49152);
    assert_int_equal(t.pre, TOKENIZER_PRE_DIGITS);
    assert_int_equal(t.eos, 2);
    for (size_t i = 0; i < sizeof HF_CASES / sizeof HF_CASES[0]; i++) expect_ids(&t, HF_CASES[i].text, HF_CASES[i].ids, HF_CASES[i].n);
    // Round trips of valid UTF-8. Bytes SmolLM2 has no token for (0xfe, 0xff and a few control
    // characters, which never occur in UTF-8 text) are dropped, as by HF tokenizers.
    for (size_t i = 0; i < sizeof TRICKY / sizeof TRICKY[0]; i++) {
        const char *s = TRICKY[i];
        size_t missing = 0, len;
        for (const char *p = s; *p; p++) missing += t.byte_tok[(unsigned char)*p] < 0;
        if (!missing) {
            round_trip(&t, s);
            continue;
        }
        int32_t *ids;
        int64_t n;
        encode(&t, s, &ids, &n);
        char *back = tokenizer_decode(&t, ids, n, &len);
        assert_int_equal(len, strlen(s) - missing);
        free(back), free(ids);
    }
    tokenizer_free(&t);
    gguf_close(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic),
        cmocka_unit_test(test_real_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
