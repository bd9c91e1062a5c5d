/* fuzz/gen_seeds.c: writes the seed corpora of the fuzz targets (tests/fuzz_seeds/). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/ckpt_model.h"

/*
 *   gen_seeds OUTDIR [CHARLM_CHECKPOINT...]
 *
 * OUTDIR/checkpoint: a mode byte + a valid checkpoint of each fuzz model (with and
 *   without optimizer state and metadata; with and without the CRC/size fix-up bits).
 * OUTDIR/charlm_meta: the metadata block of each charlm checkpoint given.
 * OUTDIR/utf8: short texts: ASCII, every UTF-8 length, and each kind of invalid sequence.
 * The seeds are committed; rerun this only when a format changes.
 */

static const char *outdir;

static void put(const char *sub, const char *name, const void *a, size_t na, const void *b,
                size_t nb)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", outdir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) {
        fprintf(stderr, "gen_seeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "gen_seeds: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "gen_seeds: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* One checkpoint seed: model, with optimizer state or not, metadata or not, mode byte. */
static void checkpoint_seed(int model, bool opt_state, bool meta, unsigned mode_extra)
{
    tg_params *ps = ckpt_model_params(model);
    tg_optim_config cfg = ckpt_model_config(model);
    tg_optim *opt = tg_optim_new(ps, &cfg);
    if (!ps || !opt || !ckpt_model_train(ps, opt, 100 + (uint64_t)model)) {
        fprintf(stderr, "gen_seeds: cannot build model %d\n", model);
        exit(1);
    }
    char tmp[512], err[256];
    snprintf(tmp, sizeof tmp, "%s/seed.ckpt", outdir);
    static const char text[] = "charlm-like metadata: config, vocabulary, state";
    if (tg_checkpoint_save(tmp, ps, opt_state ? opt : NULL, meta ? text : NULL,
                           meta ? sizeof text : 0, err, sizeof err) != TG_OK) {
        fprintf(stderr, "gen_seeds: %s\n", err);
        exit(1);
    }
    size_t n;
    unsigned char *b = slurp(tmp, &n);
    remove(tmp);
    unsigned char mode = (unsigned char)((unsigned)model << MODE_MODEL_SHIFT | mode_extra);
    if (!opt_state)
        mode |= MODE_NO_OPT;
    char name[64];
    snprintf(name, sizeof name, "model%d_%s_%s_mode%02x", model, opt_state ? "opt" : "noopt",
             meta ? "meta" : "nometa", mode);
    put("checkpoint", name, &mode, 1, b, n);
    free(b);
    tg_optim_free(opt);
    tg_params_free(ps);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_seeds OUTDIR [CHARLM_CHECKPOINT...]\n");
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    for (int model = 0; model < 4; model++)
        checkpoint_seed(model, true, true, MODE_FIX_CRC | MODE_FIX_SIZE);
    checkpoint_seed(0, false, false, MODE_FIX_CRC | MODE_FIX_SIZE);
    checkpoint_seed(1, false, true, MODE_FIX_CRC);
    checkpoint_seed(2, true, false, 0);
    checkpoint_seed(3, true, true, MODE_FIX_SIZE);

    for (int i = 2; i < argc; i++) {
        void *meta;
        size_t size;
        char err[256];
        if (tg_checkpoint_read_meta(argv[i], &meta, &size, err, sizeof err) != TG_OK) {
            fprintf(stderr, "gen_seeds: %s\n", err);
            return 1;
        }
        const char *base = strrchr(argv[i], '/');
        put("charlm_meta", base ? base + 1 : argv[i], meta, size, NULL, 0);
        free(meta);
    }

    static const struct {
        const char *name, *text;
    } texts[] = {
        { "ascii", "First Citizen:\nBefore we proceed any further, hear me speak.\n" },
        { "multibyte", "na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac \xe2\x80\x94 "
                       "\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\n" },
        { "edges", "\x7f \xc2\x80 \xdf\xbf \xe0\xa0\x80 \xef\xbf\xbf \xf0\x90\x80\x80 "
                   "\xf4\x8f\xbf\xbf \xed\x9f\xbf \xee\x80\x80" },
        { "invalid", "\x80 \xbf \xc0\xaf \xc1\xbf \xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 "
                     "\xf5\x80 \xff \xfe \xe2\x82 \xf0\x9f\x98 \xc3" },
        { "truncated_tail", "abc\xe2\x82" },
        { "mixed", "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x80\xe2\x28\xa1z\n\t\r" },
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        put("utf8", texts[i].name, texts[i].text, strlen(texts[i].text), NULL, 0);
    return 0;
}
