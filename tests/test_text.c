/* tests/test_text.c: the text suite: UTF-8, texts, vocabularies, encoding with the
   unknown-symbol policies, and contiguous-stream batches with the BPTT carry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tests.h"

/* Legend: B batch (streams), T time (window length), V vocab. */

START_TEST(test_utf8_round_trip_and_invalid)
{
    /* "a", "é" (2 bytes), "€" (3), U+1F600 (4), then a stray continuation byte, an
       overlong "/" (C0 AF) and a cut-short 3-byte sequence at the end */
    const unsigned char s[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x80\xC0\xAF\xE2\x82";
    uint32_t out[sizeof s];
    int64_t bad = -1;
    int64_t n = tg_utf8_decode(s, sizeof s - 1, out, &bad);
    const uint32_t want[] = {'a', 0xE9, 0x20AC, 0x1F600, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD};
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(bad, 4);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(out[i], want[i]);
    char buf[4];
    for (int i = 0; i < 4; i++) {
        int k = tg_utf8_encode(want[i], buf);
        uint32_t back;
        ck_assert_int_eq(tg_utf8_decode((const unsigned char *)buf, (size_t)k, &back, NULL), 1);
        ck_assert_uint_eq(back, want[i]);
    }
    ck_assert_int_eq(tg_utf8_encode(0xD800, buf), 3);   /* a surrogate: U+FFFD */
    ck_assert_int_eq((unsigned char)buf[0], 0xEF);
}
END_TEST

START_TEST(test_text_and_vocab_chars)
{
    tg_text t;
    ck_assert_int_eq(tg_text_from_memory(&t, "hello, h\xC3\xA9llo", 13, TG_VOCAB_CHARS), TG_OK);
    ck_assert_int_eq(t.n, 12);
    ck_assert_int_eq(t.bytes, 13);
    tg_vocab v;
    ck_assert_int_eq(tg_vocab_build(&v, &t), TG_OK);
    const uint32_t want[] = {' ', ',', 'e', 'h', 'l', 'o', 0xE9};   /* sorted, distinct */
    ck_assert_int_eq(v.size, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(v.symbols[i], want[i]);
    ck_assert_int_eq(tg_vocab_find(&v, 'l'), 4);
    ck_assert_int_eq(tg_vocab_find(&v, 'z'), -1);
    char buf[4];
    ck_assert_int_eq(tg_vocab_bytes(&v, 6, buf), 2);
    ck_assert_int_eq(tg_vocab_bytes(&v, 7, buf), 0);
    int32_t ids[12];
    int64_t n = 0, skipped = -1;
    ck_assert_int_eq(tg_vocab_encode(&v, &t, TG_UNKNOWN_REFUSE, ids, &n, &skipped), TG_OK);
    ck_assert_int_eq(n, 12);
    ck_assert_int_eq(skipped, 0);
    ck_assert_int_eq(ids[0], 3);   /* 'h' */
    ck_assert_int_eq(ids[8], 6);   /* 'é' */
    tg_vocab_free(&v);
    tg_text_free(&t);
    ck_assert_ptr_null(t.symbols);
}
END_TEST

START_TEST(test_vocab_unknown_refuse_and_skip)
{
    tg_text base, other;
    tg_vocab v;
    ck_assert_int_eq(tg_text_from_memory(&base, "abc", 3, TG_VOCAB_CHARS), TG_OK);
    ck_assert_int_eq(tg_vocab_build(&v, &base), TG_OK);
    ck_assert_int_eq(tg_text_from_memory(&other, "abxcyy", 6, TG_VOCAB_CHARS), TG_OK);
    int32_t ids[6];
    int64_t n = 0, skipped = 0;
    ck_assert_int_eq(tg_vocab_encode(&v, &other, TG_UNKNOWN_REFUSE, ids, &n, &skipped),
                     TG_ERR_ARG);
    ck_assert_int_eq(n, 2);                      /* the position of 'x' */
    ck_assert_str_eq(tg_last_error(),
                     "vocab_encode: 'x' (U+0078) at position 2 is not in the vocabulary");
    ck_assert_int_eq(tg_vocab_encode(&v, &other, TG_UNKNOWN_SKIP, ids, &n, &skipped), TG_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(skipped, 3);
    ck_assert_int_eq(ids[2], 2);                 /* 'c' */
    tg_text bytes;
    ck_assert_int_eq(tg_text_from_memory(&bytes, "ab", 2, TG_VOCAB_BYTES), TG_OK);
    ck_assert_int_eq(tg_vocab_encode(&v, &bytes, TG_UNKNOWN_SKIP, ids, &n, NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "character vocabulary and a text of bytes"));
    ck_assert_int_eq(tg_vocab_encode(NULL, &bytes, TG_UNKNOWN_SKIP, ids, &n, NULL),
                     TG_ERR_NULL);
    tg_text_free(&bytes);
    tg_text_free(&other);
    tg_text_free(&base);
    tg_vocab_free(&v);
}
END_TEST

START_TEST(test_vocab_bytes_takes_any_file)
{
    const unsigned char data[] = {0x00, 0xFF, 0xC3, 0x28, '\n'};   /* not UTF-8 */
    tg_text t;
    tg_vocab v;
    ck_assert_int_eq(tg_text_from_memory(&t, data, sizeof data, TG_VOCAB_BYTES), TG_OK);
    ck_assert_int_eq(t.n, 5);
    ck_assert_int_eq(t.replaced, 0);
    ck_assert_int_eq(tg_vocab_build(&v, &t), TG_OK);
    ck_assert_int_eq(v.size, 256);               /* every byte: nothing is ever unknown */
    int32_t ids[5];
    int64_t n = 0;
    ck_assert_int_eq(tg_vocab_encode(&v, &t, TG_UNKNOWN_REFUSE, ids, &n, NULL), TG_OK);
    ck_assert_int_eq(ids[1], 255);
    char buf[4];
    ck_assert_int_eq(tg_vocab_bytes(&v, 0xC3, buf), 1);
    ck_assert_int_eq((unsigned char)buf[0], 0xC3);
    char d[32];
    ck_assert_str_eq(tg_vocab_describe(TG_VOCAB_BYTES, 'A', d), "byte 0x41 'A'");
    ck_assert_str_eq(tg_vocab_describe(TG_VOCAB_BYTES, 0x07, d), "byte 0x07");
    ck_assert_str_eq(tg_vocab_describe(TG_VOCAB_CHARS, '\n', d), "'\\n' (U+000A)");
    tg_vocab_free(&v);
    tg_text_free(&t);
}
END_TEST

START_TEST(test_vocab_init_and_merge)
{
    const uint32_t old_syms[] = {'a', 'c', 'e'};
    tg_vocab old, merged;
    ck_assert_int_eq(tg_vocab_init(&old, TG_VOCAB_CHARS, old_syms, 3), TG_OK);
    tg_text t;
    ck_assert_int_eq(tg_text_from_memory(&t, "bead", 4, TG_VOCAB_CHARS), TG_OK);
    int32_t map[3];
    ck_assert_int_eq(tg_vocab_merge(&old, &t, &merged, map), TG_OK);
    ck_assert_int_eq(merged.size, 5);            /* a b c d e */
    ck_assert_int_eq(map[0], 0);
    ck_assert_int_eq(map[1], 2);
    ck_assert_int_eq(map[2], 4);
    const uint32_t unsorted[] = {'b', 'a'};
    const uint32_t big[] = {256};
    tg_vocab bad;
    ck_assert_int_eq(tg_vocab_init(&bad, TG_VOCAB_CHARS, unsorted, 2), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "vocab_init"));
    ck_assert_int_eq(tg_vocab_init(&bad, TG_VOCAB_BYTES, big, 1), TG_ERR_ARG);
    ck_assert_int_eq(tg_vocab_init(&bad, TG_VOCAB_CHARS, old_syms, 0), TG_ERR_ARG);
    ck_assert_int_eq(tg_vocab_init(&bad, (tg_vocab_kind)7, old_syms, 3), TG_ERR_ARG);
    ck_assert_int_eq(tg_vocab_init(NULL, TG_VOCAB_CHARS, old_syms, 3), TG_ERR_NULL);
    tg_text bytes;
    ck_assert_int_eq(tg_text_from_memory(&bytes, "x", 1, TG_VOCAB_BYTES), TG_OK);
    ck_assert_int_eq(tg_vocab_merge(&old, &bytes, &bad, map), TG_ERR_ARG);
    ck_assert_int_eq(tg_vocab_merge(&old, &bytes, &bad, NULL), TG_ERR_NULL);
    tg_text empty;
    ck_assert_int_eq(tg_text_from_memory(&empty, NULL, 0, TG_VOCAB_CHARS), TG_OK);
    ck_assert_int_eq(tg_vocab_build(&bad, &empty), TG_ERR_ARG);
    tg_text_free(&empty);
    ck_assert_int_eq(tg_text_from_memory(&empty, "x", 1, (tg_vocab_kind)9), TG_ERR_ARG);
    ck_assert_int_eq(tg_text_from_memory(NULL, "x", 1, TG_VOCAB_CHARS), TG_ERR_NULL);
    tg_text_free(&bytes);
    tg_text_free(&t);
    tg_vocab_free(&merged);
    tg_vocab_free(&old);
}
END_TEST

START_TEST(test_text_read_file_and_errors)
{
    char path[] = "/tmp/tg_text_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    tg_text t;
    ck_assert_int_eq(tg_text_read(&t, path, TG_VOCAB_CHARS), TG_ERR_ARG);   /* empty */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "is empty"));
    tg_test_write_file(path, "abc\n", 4);
    ck_assert_int_eq(tg_text_read(&t, path, TG_VOCAB_CHARS), TG_OK);
    ck_assert_int_eq(t.n, 4);
    tg_text_free(&t);
    unlink(path);
    ck_assert_int_eq(tg_text_read(&t, path, TG_VOCAB_CHARS), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "text_read_file: cannot open"));
    ck_assert_int_eq(tg_text_read(&t, NULL, TG_VOCAB_CHARS), TG_ERR_NULL);
    unsigned char *data;
    size_t size;
    ck_assert_int_eq(tg_text_read_file(NULL, &data, &size), TG_ERR_NULL);
    ck_assert_int_eq(tg_text_read_file("/", &data, &size), TG_ERR_IO);   /* a directory */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "text_read_file: cannot read '/'"));
    ck_assert_int_eq(tg_text_val_count(100, 0.1), 10);
    ck_assert_int_eq(tg_text_val_count(100, 0.0), 0);
    ck_assert_int_eq(tg_text_val_count(5, 2.0), 5);
}
END_TEST

/* B 2 streams of L 7 ids, T 3: windows (7 - 1) / 3 = 2; row b of window w+1 continues
   row b of window w; after the last window the cursor wraps and the carry is zeroed. */
START_TEST(test_batcher_streams_and_carry)
{
    int32_t ids[15];
    for (int i = 0; i < 15; i++)
        ids[i] = i;
    tg_batcher bt;
    ck_assert_int_eq(tg_batcher_init(&bt, ids, 15, 2, 3), TG_OK);
    ck_assert_int_eq(bt.L, 7);
    ck_assert_int_eq(bt.windows, 2);
    int32_t in[6], tg[6];
    tg_batcher_fill(&bt, in, tg);
    const int32_t in0[6] = {0, 1, 2, 7, 8, 9}, tg0[6] = {1, 2, 3, 8, 9, 10};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(in[i], in0[i]);
        ck_assert_int_eq(tg[i], tg0[i]);
    }
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_rnn_stack s;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", tg_test_cell_type("gru"), 1, 3, 4, 0, NULL,
                                       &rng), TG_OK);
    tg_stack_state *carry = tg_stack_state_new(&s, TG_F32, 2);
    tg_tensor_fill(carry->tensors[0][0], 0.5);
    ck_assert(!tg_batcher_advance(&bt, carry));
    ck_assert_int_eq(bt.cursor, 1);
    tg_batcher_fill(&bt, in, tg);
    ck_assert_int_eq(in[0], 3);                  /* continues stream 0 */
    ck_assert_int_eq(in[3], 10);                 /* continues stream 1 */
    ck_assert_double_eq(tg_tensor_get(carry->tensors[0][0], 0), 0.5);
    ck_assert(tg_batcher_advance(&bt, carry));   /* a new epoch */
    ck_assert_int_eq(bt.cursor, 0);
    ck_assert_double_eq(tg_tensor_get(carry->tensors[0][0], 0), 0.0);
    tg_stack_state_free(carry);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);

    ck_assert_int_eq(tg_batcher_init(&bt, ids, 7, 2, 3), TG_ERR_ARG);   /* 2 x 4 needed */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "need at least 8"));
    ck_assert_int_eq(tg_batcher_init(&bt, ids, 15, 0, 3), TG_ERR_ARG);
    ck_assert_int_eq(tg_batcher_init(&bt, NULL, 15, 2, 3), TG_ERR_NULL);
}
END_TEST

Suite *text_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("text", 0),
        TG_TEST(test_utf8_round_trip_and_invalid),
        TG_TEST(test_text_and_vocab_chars),
        TG_TEST(test_vocab_unknown_refuse_and_skip),
        TG_TEST(test_vocab_bytes_takes_any_file),
        TG_TEST(test_vocab_init_and_merge),
        TG_TEST(test_text_read_file_and_errors),
        TG_TEST(test_batcher_streams_and_carry),
    };
    return TG_TEST_SUITE("text", rows);
}
