/* fuzz/fuzz_checkpoint.c: libFuzzer target for tg_checkpoint_read_meta and tg_checkpoint_load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz/ckpt_model.h"
#include "fuzz/fuzz.h"
#include "tensor/tensor_internal.h"   /* tg_crc32 */

/*
 * Input: one mode byte (fuzz/ckpt_model.h), then the file. The file goes to an in-memory
 * file and is read with tg_checkpoint_read_meta, then loaded into a fixed model (and
 * optimizer) with tg_checkpoint_load. Beyond "no crash, no leak, no undefined behaviour"
 * (ASan, LeakSanitizer, UBSan), every call must keep the contract:
 *   - a failure returns a documented status with a one-line message, leaves the
 *     metadata outputs NULL/0 and modifies no parameter and no optimizer state;
 *   - read_meta and load agree on whether the file is valid;
 *   - an accepted file is canonical: saving the loaded state (with the metadata read
 *     back) writes exactly the same bytes, and the optimizer can take a step from it.
 */

static fuzz_file in_file;
static char out_dir[256];
static char out_path[300];
static bool ready;

static void remove_out_dir(void)
{
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    unlink(out_path);
    unlink(tmp);
    rmdir(out_dir);
}

static void init(void)
{
    fuzz_file_open(&in_file, "ckpt");
    /* libFuzzer may end with _Exit, skipping atexit: tests/fuzz.sh points TMPDIR into
       the build tree so nothing is left elsewhere */
    const char *base = getenv("TMPDIR");
    if (!base || !base[0])
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out_dir, sizeof out_dir, "%s/tg_fuzz_ckpt_XXXXXX", base);
    FUZZ_CHECK(mkdtemp(out_dir) != NULL, "mkdtemp %s", out_dir);
    snprintf(out_path, sizeof out_path, "%s/resave.ckpt", out_dir);
    atexit(remove_out_dir);
    ready = true;
}

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* A copy of every parameter's values and of the optimizer's step count and lr. */
typedef struct snapshot {
    unsigned char *values;
    size_t bytes;
    int64_t steps;
    double lr;
} snapshot;

static snapshot take(tg_params *ps, const tg_optim *opt)
{
    snapshot s = { NULL, 0, 0, 0 };
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        s.bytes += (size_t)t->numel * tg_dtype_size(t->dtype);
    }
    s.values = malloc(s.bytes);
    FUZZ_CHECK(s.values != NULL, "out of memory");
    size_t off = 0;
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        size_t n = (size_t)t->numel * tg_dtype_size(t->dtype);
        memcpy(s.values + off, t->data, n);
        off += n;
    }
    if (opt) {
        s.steps = tg_optim_steps(opt);
        s.lr = tg_optim_get_lr(opt);
    }
    return s;
}

static bool same(const snapshot *a, const snapshot *b)
{
    return a->bytes == b->bytes && memcmp(a->values, b->values, a->bytes) == 0
           && a->steps == b->steps && memcmp(&a->lr, &b->lr, sizeof a->lr) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!ready)
        init();
    unsigned mode = data[0];
    int model = (int)(mode >> MODE_MODEL_SHIFT) & 3;
    bool with_opt = !(mode & MODE_NO_OPT);
    size_t n = size - 1;
    unsigned char *file = malloc(n ? n : 1);
    FUZZ_CHECK(file != NULL, "out of memory");
    memcpy(file, data + 1, n);
    if ((mode & MODE_FIX_SIZE) && n >= 24)
        put_le(file + 16, n, 8);
    if ((mode & MODE_FIX_CRC) && n >= 4)
        put_le(file + n - 4, tg_crc32(0, file, n - 4), 4);
    fuzz_file_set(&in_file, file, n);

    /* read_meta */
    char err[512];
    memset(err, 'x', sizeof err);
    err[sizeof err - 1] = '\0';
    void *meta = (void *)&in_file;   /* must be overwritten */
    size_t meta_size = 12345;
    tg_status mst = tg_checkpoint_read_meta(in_file.path, &meta, &meta_size, err, sizeof err);
    if (mst == TG_OK) {
        FUZZ_CHECK(err[0] == '\0', "read_meta OK but err '%s'", err);
        FUZZ_CHECK((meta == NULL) == (meta_size == 0), "meta %p, size %zu", meta, meta_size);
    } else {
        FUZZ_CHECK(mst == TG_ERR_FORMAT || mst == TG_ERR_IO || mst == TG_ERR_NOMEM,
                   "read_meta status %d", mst);
        FUZZ_CHECK(fuzz_one_line(err), "read_meta message '%s'", err);
        FUZZ_CHECK(meta == NULL && meta_size == 0, "read_meta failed but meta %p/%zu", meta,
                   meta_size);
    }

    /* load into a fixed model (and optimizer) */
    tg_params *ps = ckpt_model_params(model);
    FUZZ_CHECK(ps != NULL, "cannot build model %d", model);
    tg_optim_config cfg = ckpt_model_config(model);
    tg_optim *opt = NULL;
    if (with_opt) {
        opt = tg_optim_new(ps, &cfg);
        FUZZ_CHECK(opt != NULL, "cannot make optimizer");
    }
    FUZZ_CHECK(ckpt_model_train(ps, opt, 7), "cannot train model %d", model);
    snapshot before = take(ps, opt);
    memset(err, 'x', sizeof err - 1);
    tg_status st = tg_checkpoint_load(in_file.path, ps, opt, err, sizeof err);
    snapshot after = take(ps, opt);
    if (st != TG_OK) {
        FUZZ_CHECK(st == TG_ERR_FORMAT || st == TG_ERR_IO || st == TG_ERR_NOMEM
                       || st == TG_ERR_SHAPE || st == TG_ERR_DTYPE || st == TG_ERR_ARG,
                   "load status %d", st);
        FUZZ_CHECK(fuzz_one_line(err), "load message '%s'", err);
        FUZZ_CHECK(same(&before, &after), "a failed load modified the model (%s)", err);
        /* a file the parser accepts may still not fit this model, but not the reverse */
        FUZZ_CHECK(mst != TG_OK || st != TG_ERR_FORMAT, "read_meta OK but load: %s", err);
    } else {
        FUZZ_CHECK(err[0] == '\0', "load OK but err '%s'", err);
        FUZZ_CHECK(mst == TG_OK, "load OK but read_meta failed");
        if (opt) {
            /* canonical: the loaded state saves to the same bytes */
            char serr[512];
            tg_status sst = tg_checkpoint_save(out_path, ps, opt, meta, meta_size, serr,
                                               sizeof serr);
            FUZZ_CHECK(sst == TG_OK, "re-save failed: %s", serr);
            FILE *f = fopen(out_path, "rb");
            FUZZ_CHECK(f != NULL, "cannot open %s", out_path);
            unsigned char *back = malloc(n + 1);
            FUZZ_CHECK(back != NULL, "out of memory");
            size_t got = fread(back, 1, n + 1, f);
            fclose(f);
            unlink(out_path);
            FUZZ_CHECK(got == n, "re-saved %zu bytes, loaded %zu", got, n);
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(back[i] == file[i], "re-saved byte %zu is 0x%02x, file has 0x%02x",
                           i, back[i], file[i]);
            free(back);
            /* and the restored optimizer works (non-finite values may make it refuse) */
            tg_status step = tg_optim_step(opt);
            FUZZ_CHECK(step == TG_OK || step == TG_ERR_NONFINITE || step == TG_ERR_ARG,
                       "step after load: %d", step);
        }
    }
    free(before.values);
    free(after.values);
    tg_optim_free(opt);
    tg_params_free(ps);
    free(meta);
    free(file);
    return 0;
}
