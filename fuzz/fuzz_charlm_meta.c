/* fuzz/fuzz_charlm_meta.c: libFuzzer target for the char-LM's checkpoint metadata decoder. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"
#include "fuzz/fuzz.h"

/*
 * The input is the metadata block of a charlm checkpoint (what tg_checkpoint_read_meta
 * hands to meta_decode when `charlm sample/eval/train --resume` opens a file). A failed
 * decode must leave nothing allocated and say why in one line; an accepted block must
 * be canonical: meta_encode of the decoded struct gives back exactly the input bytes.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    charlm_meta m;
    char err[512] = "";
    int rc = meta_decode(data, size, &m, err, sizeof err);
    if (rc != EXIT_OK) {
        FUZZ_CHECK(rc == EXIT_RUNTIME, "rc %d", rc);
        FUZZ_CHECK(fuzz_one_line(err), "message '%s'", err);
        bool left = m.vocab || m.loss || m.val_step || m.val_loss;
        for (int k = 0; k < TG_MAX_CELL_STATE; k++)
            left = left || m.state[k];
        FUZZ_CHECK(!left, "a failed decode left buffers behind");
        return 0;
    }
    unsigned char *buf = NULL;
    size_t n = 0;
    FUZZ_CHECK(meta_encode(&m, &buf, &n) == EXIT_OK, "re-encode failed");
    meta_free(&m);
    /* An older version's block is re-encoded in the current one: decode that instead, so
       the byte comparison below is always between two blocks of the current version. */
    unsigned char *first = NULL;
    if (size < 12 || data[8] != (META_VERSION & 0xff)) {
        FUZZ_CHECK(meta_decode(buf, n, &m, err, sizeof err) == EXIT_OK,
                   "the re-encoded block is refused: %s", err);
        first = buf, data = buf, size = n, buf = NULL;
        FUZZ_CHECK(meta_encode(&m, &buf, &n) == EXIT_OK, "second re-encode failed");
        meta_free(&m);
    }
    FUZZ_CHECK(n == size, "re-encoded %zu bytes, decoded %zu", n, size);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(buf[i] == data[i], "re-encoded byte %zu is 0x%02x, input has 0x%02x", i,
                   buf[i], data[i]);
    free(buf);
    free(first);
    return 0;
}
