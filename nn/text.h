/* nn/text.h: text for language models: UTF-8 or byte symbols, a vocabulary, token ids,
   contiguous-stream batches for truncated backpropagation through time (BPTT). */
#ifndef TG_NN_TEXT_H
#define TG_NN_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

/*
 * A character model's data path, reusable by a training loop of your own:
 *
 *     tg_text text;  tg_vocab vocab;  tg_batcher bt;
 *     tg_text_read(&text, "input.txt", TG_VOCAB_CHARS);   // or TG_VOCAB_BYTES
 *     tg_vocab_build(&vocab, &text);                      // the text's own symbols
 *     int32_t *ids = malloc(text.n * sizeof *ids);  int64_t n;
 *     tg_vocab_encode(&vocab, &text, TG_UNKNOWN_REFUSE, ids, &n, NULL);
 *     tg_batcher_init(&bt, ids, n - tg_text_val_count(n, 0.1), B, T);
 *     for (;;) {
 *         tg_batcher_fill(&bt, inputs, targets);          // window bt.cursor, (B,T) each
 *         ... forward with the carried state, backward, step ...
 *         tg_batcher_advance(&bt, state);                 // next window; new epoch: zeroes state
 *     }
 *
 * Every function that returns a status leaves the reason in tg_last_error() on failure.
 */

/* What a symbol is: a Unicode code point decoded from UTF-8, or one raw byte. */
typedef enum tg_vocab_kind {
    TG_VOCAB_CHARS,   /* code points; invalid UTF-8 sequences read as U+FFFD             */
    TG_VOCAB_BYTES    /* bytes 0..255: any file, binary included, with no unknown symbol */
} tg_vocab_kind;

#define TG_TEXT_REPLACEMENT 0xFFFDu   /* U+FFFD, what an invalid UTF-8 sequence becomes */
#define TG_TEXT_MAX_CODE_POINT 0x10FFFFu

/* ---- UTF-8 ----------------------------------------------------------------------- */
/* Decodes n bytes into out (room for n code points), following the Unicode "maximal
   subpart" practice: each invalid or cut-short sequence becomes one U+FFFD (counted in
   *replaced unless NULL) and decoding resumes at the first byte that did not fit.
   Returns the number of code points. */
int64_t tg_utf8_decode(const unsigned char *s, size_t n, uint32_t *out, int64_t *replaced);

/* Writes cp as UTF-8 into buf (>= 4 bytes) and returns the byte count; a surrogate or a
   value above U+10FFFF is written as U+FFFD. */
int tg_utf8_encode(uint32_t cp, char *buf);

/* ---- text ------------------------------------------------------------------------ */
typedef struct tg_text {
    tg_vocab_kind kind;
    uint32_t *symbols;   /* (n) code points or bytes, malloc'ed                        */
    int64_t n;
    int64_t replaced;    /* TG_VOCAB_CHARS: invalid UTF-8 sequences read as U+FFFD     */
    uint64_t bytes;      /* the source's size in bytes                                 */
} tg_text;

/* Decodes size bytes of data (UTF-8 for TG_VOCAB_CHARS) into t. An empty text is allowed.
   Returns TG_ERR_NULL / TG_ERR_ARG (unknown kind) / TG_ERR_NOMEM; t is then empty. */
tg_status tg_text_from_memory(tg_text *t, const void *data, size_t size, tg_vocab_kind kind);

/* Reads the whole file at path into a malloc'ed buffer: *data (the caller frees) and *size
   bytes. Returns TG_ERR_NULL / TG_ERR_IO (cannot open or read: the message names the file
   and the system's reason) / TG_ERR_NOMEM. */
tg_status tg_text_read_file(const char *path, unsigned char **data, size_t *size);

/* Reads the file at path into t as tg_text_from_memory does. Returns TG_ERR_NULL /
   TG_ERR_IO (cannot open or read: the message names the file and the system's reason) /
   TG_ERR_ARG (the file is empty) / TG_ERR_NOMEM; t is then empty. */
tg_status tg_text_read(tg_text *t, const char *path, tg_vocab_kind kind);

/* Frees t's symbols and empties it (t may be empty or zeroed). */
void tg_text_free(tg_text *t);

/* The validation split of n symbols: the last floor(n * frac) of them, clamped to [0,n]. */
int64_t tg_text_val_count(int64_t n, double frac);

/* ---- vocabulary -------------------------------------------------------------------- */
typedef struct tg_vocab {
    tg_vocab_kind kind;
    int size;            /* V                                                          */
    uint32_t *symbols;   /* (V) strictly increasing; id i stands for symbols[i]        */
} tg_vocab;

/* The vocabulary of t: its distinct code points (TG_VOCAB_CHARS, sorted), or all 256
   bytes (TG_VOCAB_BYTES, so that any later file encodes). Returns TG_ERR_NULL /
   TG_ERR_ARG (an empty text of characters) / TG_ERR_NOMEM. */
tg_status tg_vocab_build(tg_vocab *v, const tg_text *t);

/* A copy of symbols[0..size) (strictly increasing; a checkpoint's, say) as v. Returns
   TG_ERR_NULL / TG_ERR_ARG (size < 1, not increasing, a byte above 255 or a code point
   above U+10FFFF) / TG_ERR_NOMEM. */
tg_status tg_vocab_init(tg_vocab *v, tg_vocab_kind kind, const uint32_t *symbols, int size);

/* merged = old plus the symbols of t it lacks, sorted; old_to_new[i] (room for old->size)
   receives the id in merged of old's symbol i, so a model's rows can follow their
   symbols. Returns TG_ERR_NULL / TG_ERR_ARG (kinds differ) / TG_ERR_NOMEM. */
tg_status tg_vocab_merge(const tg_vocab *old, const tg_text *t, tg_vocab *merged,
                         int32_t *old_to_new);

/* Frees v's symbols and empties it. */
void tg_vocab_free(tg_vocab *v);

/* The id of symbol, or -1 when it is not in v. */
int tg_vocab_find(const tg_vocab *v, uint32_t symbol);

/* The bytes that print id (UTF-8 of its code point, or its byte) into buf (>= 4 bytes);
   returns their count, 0 for an id outside v. */
int tg_vocab_bytes(const tg_vocab *v, int id, char *buf);

/* A symbol for a message, into buf (>= 32 bytes): 'x' (U+0078), '\n' (U+000A), U+0007;
   bytes as byte 0x41 'A'. Returns buf. */
const char *tg_vocab_describe(tg_vocab_kind kind, uint32_t symbol, char *buf);

/* What to do with a symbol outside the vocabulary. */
typedef enum tg_unknown {
    TG_UNKNOWN_REFUSE,   /* fail, naming the first one and its position               */
    TG_UNKNOWN_SKIP      /* leave it out and count it                                 */
} tg_unknown;

/* Maps t's symbols to ids (room for t->n) and sets *n_ids to their count and *skipped
   (unless NULL) to the symbols left out. Returns TG_ERR_NULL / TG_ERR_ARG (kinds differ;
   with TG_UNKNOWN_REFUSE, a symbol outside v: *n_ids then holds its position, and the
   message reads "vocab_encode: 'x' (U+0078) at position 12 is not in the vocabulary"). */
tg_status tg_vocab_encode(const tg_vocab *v, const tg_text *t, tg_unknown unknown,
                          int32_t *ids, int64_t *n_ids, int64_t *skipped);

/* ---- contiguous-stream batches (char-rnn's scheme) ------------------------------------
 * The n training ids are cut into B contiguous streams of L = n / B ids. Window w of
 * every stream is inputs [b*L + w*T, +T) and the targets one further on, so row b of
 * window w+1 continues row b of window w: the recurrent state at the end of a window is
 * the right start for the next (truncated BPTT carries it, detached). An epoch has
 * (L - 1) / T windows; at its end the streams restart and the carry is zeroed.
 */
typedef struct tg_batcher {
    const int32_t *ids;  /* the caller's (n) ids, not copied                           */
    int64_t B, T, L;
    int64_t windows;     /* per epoch                                                  */
    int64_t cursor;      /* the next window, 0 <= cursor < windows                     */
} tg_batcher;

/* Sets up bt over ids[0..n) at window 0. Returns TG_ERR_NULL / TG_ERR_ARG (B or T < 1,
   or too few ids for one window: B * (T + 1) are needed; the message says how many). */
tg_status tg_batcher_init(tg_batcher *bt, const int32_t *ids, int64_t n, int64_t B,
                          int64_t T);

/* Fills inputs and targets, (B,T) row-major each, with window bt->cursor. */
void tg_batcher_fill(const tg_batcher *bt, int32_t *inputs, int32_t *targets);

/* Moves to the next window. At the end of an epoch the cursor returns to 0, carry (when
   not NULL) is zeroed and true is returned. */
bool tg_batcher_advance(tg_batcher *bt, tg_stack_state *carry);

#endif /* TG_NN_TEXT_H */
