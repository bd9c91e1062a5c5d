/* tests/test_checkpoint.c: checkpoint round trips, byte-identical saves, and refusal of
   truncated, corrupted, extended, foreign and mismatched files, and of unwritable paths. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/tensor_internal.h"   /* tg_crc32 */
#include "tests/tests.h"

/* ---- helpers ---------------------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/tg_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* tmpdir/name in a static rotating buffer (a few may be live at once). */
static const char *tpath(const char *name)
{
    return tg_test_join(tmpdir, name);
}

/* Removes the files the tests create, then the directory. */
static void remove_tmpdir(void)
{
    const char *names[] = { "a.ckpt", "b.ckpt", "c.ckpt", "bad.ckpt", "a.ckpt.tmp",
                            "b.ckpt.tmp", "dir.ckpt/x", "dir.ckpt.tmp" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        remove(tpath(names[i]));
    rmdir(tpath("a.ckpt.tmp"));
    rmdir(tpath("dir.ckpt"));
    ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* Recomputes the trailing CRC-32 of a checkpoint image. */
static void fix_crc(unsigned char *b, size_t n)
{
    uint32_t c = tg_crc32(0, b, n - 4);
    for (int i = 0; i < 4; i++)
        b[n - 4 + (size_t)i] = (unsigned char)(c >> (8 * i));
}

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static bool one_line(const char *msg)
{
    return msg[0] != '\0' && strchr(msg, '\n') == NULL;
}

/* Four parameters: "embed" (rows, cols), "conv" (2,1,2,3), "bias" (bias_len) and `last`
   (2,2), every element 0.5: model's layout, or one that differs from it. */
static tg_params *params4(tg_dtype dt, int64_t rows, int64_t cols, int64_t bias_len,
                          const char *last)
{
    tg_params *ps = tg_params_new(dt);
    ck_assert_ptr_nonnull(tg_params_add(ps, "embed", 2, (const int64_t[]){ rows, cols }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "conv", 4, (const int64_t[]){ 2, 1, 2, 3 }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "bias", 1, (const int64_t[]){ bias_len }));
    ck_assert_ptr_nonnull(tg_params_add(ps, last, 2, (const int64_t[]){ 2, 2 }));
    for (int i = 0; i < tg_params_count(ps); i++)
        tg_tensor_fill(tg_params_at(ps, i), 0.5);
    return ps;
}

/* A small model of every rank: "embed" (5,3), "conv" (2,1,2,3), "bias" (3), "h" (2,2). */
static tg_params *model(tg_dtype dt, uint64_t seed)
{
    tg_params *ps = params4(dt, 5, 3, 3, "h");
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int i = 0; i < tg_params_count(ps); i++)
        tg_tensor_fill_uniform(tg_params_at(ps, i), &rng, -1.0, 1.0);
    return ps;
}

/* A config of kind k that uses every state buffer the kind has. */
static tg_optim_config full_config(tg_optim_kind k)
{
    tg_optim_config c = tg_optim_defaults(k);
    c.lr = 0.05;
    c.weight_decay = 0.01;
    if (k == TG_SGD) {
        c.momentum = 0.9;
        c.nesterov = true;
    } else if (k == TG_RMSPROP) {
        c.centered = true;
        c.momentum = 0.5;
    } else if (k == TG_ADAGRAD) {
        c.lr_decay = 0.01;
        c.initial_accumulator_value = 0.1;
    }
    return c;
}

/* model(dt, seed), with an optimizer of full_config(kind) in *opt. */
static tg_params *model_optim(tg_dtype dt, uint64_t seed, tg_optim_kind kind, tg_optim **opt)
{
    tg_params *ps = model(dt, seed);
    tg_optim_config c = full_config(kind);
    *opt = tg_optim_new(ps, &c);
    return ps;
}

/* n training steps with gradients drawn from rng, global-norm clipped at 1. */
static void train(tg_params *ps, tg_optim *opt, tg_rng *rng, int n)
{
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < tg_params_count(ps); i++) {
            tg_tensor *t = tg_params_at(ps, i);
            for (int64_t k = 0; k < t->numel; k++) {
                double g = tg_rng_normal(rng);
                if (t->dtype == TG_F64)
                    ((double *)t->grad)[k] = g;
                else
                    ((float *)t->grad)[k] = (float)g;
            }
        }
        tg_clip_grad_norm(ps, 1.0);
        ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    }
}

/* True when every parameter of a and b has the same bytes. */
static bool same_values(tg_params *a, tg_params *b)
{
    if (tg_params_count(a) != tg_params_count(b))
        return false;
    for (int i = 0; i < tg_params_count(a); i++) {
        tg_tensor *x = tg_params_at(a, i), *y = tg_params_at(b, i);
        if (x->numel != y->numel || x->dtype != y->dtype
            || memcmp(x->data, y->data, (size_t)x->numel * tg_dtype_size(x->dtype)) != 0)
            return false;
    }
    return true;
}

static bool files_equal(const char *p, const char *q)
{
    size_t n, m;
    unsigned char *a = tg_test_read_file(p, &n), *b = tg_test_read_file(q, &m);
    bool eq = n == m && memcmp(a, b, n) == 0;
    free(a);
    free(b);
    return eq;
}

/* Saving ps with opt and meta to tpath(name) writes the very bytes of tpath(same_as):
   the same state writes the same bytes. */
static void expect_saved_same(const char *name, const char *same_as, tg_params *ps,
                              tg_optim *opt, const void *meta, size_t msize)
{
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(tpath(name), ps, opt, meta, msize, err, sizeof err),
                     TG_OK);
    ck_assert(files_equal(tpath(name), tpath(same_as)));
}

/* Frees the two sides of a resume test, a with oa and b with ob. */
static void free_sides(tg_params *a, tg_optim *oa, tg_params *b, tg_optim *ob)
{
    tg_optim_free(oa);
    tg_optim_free(ob);
    tg_params_free(a);
    tg_params_free(b);
}

static const char META[] = "config: hidden=4 layers=2; vocab: abc; rng+cursor+h";

/* Saves a trained small model (Adam, 3 steps) with META to tpath(name); returns its
   params and optimizer through the pointers. */
static void save_small(const char *name, tg_params **ps_out, tg_optim **opt_out)
{
    tg_optim *opt;
    tg_params *ps = model_optim(TG_F32, 1, TG_ADAM, &opt);
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    train(ps, opt, &rng, 3);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(tpath(name), ps, opt, META, sizeof META, err,
                                        sizeof err), TG_OK);
    ck_assert_str_eq(err, "");
    *ps_out = ps;
    *opt_out = opt;
}

/* Where most refusal tests start: in a new tmpdir, save_small's model and optimizer saved
   to "a.ckpt", and that file's n bytes b. */
typedef struct saved {
    tg_params *ps;
    tg_optim *opt;
    unsigned char *b;
    size_t n;
} saved;

static saved open_saved(void)
{
    saved s;
    make_tmpdir();
    save_small("a.ckpt", &s.ps, &s.opt);
    s.b = tg_test_read_file(tpath("a.ckpt"), &s.n);
    return s;
}

/* Frees what open_saved made and removes the tmpdir. */
static void close_saved(saved *s)
{
    free(s->b);
    tg_optim_free(s->opt);
    tg_params_free(s->ps);
    remove_tmpdir();
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_crc32)
{
    ck_assert_uint_eq(tg_crc32(0, "123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(tg_crc32(0, "", 0), 0u);
    ck_assert_uint_eq(tg_crc32(tg_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    ck_assert_uint_eq(tg_crc32(0, "The quick brown fox jumps over the lazy dog", 43),
                      0x414FA339u);
}
END_TEST

/* Train 5 steps, save, load into fresh params and a fresh optimizer of the same kind but
   another config, continue 5 steps in both: bit-identical. Loop: 5 kinds x 2 dtypes. */
START_TEST(test_roundtrip_bit_exact)
{
    tg_optim_kind kind = (tg_optim_kind)(_i / 2);
    tg_dtype dt = _i % 2 ? TG_F64 : TG_F32;
    make_tmpdir();
    tg_optim *oa;
    tg_params *a = model_optim(dt, 10, kind, &oa);
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    train(a, oa, &rng, 5);
    tg_optim_set_lr(oa, 0.0375);   /* the lr a schedule set is restored too */
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), a, oa, META, sizeof META, err,
                                        sizeof err), TG_OK);

    tg_params *b = model(dt, 99);          /* other values */
    tg_optim_config cb = tg_optim_defaults(kind);   /* other config, other buffers */
    tg_optim *ob = tg_optim_new(b, &cb);
    ck_assert(!same_values(a, b));
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), b, ob, err, sizeof err), TG_OK);
    ck_assert_str_eq(err, "");
    ck_assert(same_values(a, b));
    ck_assert_int_eq(tg_optim_steps(ob), 5);
    ck_assert(tg_optim_get_lr(ob) == 0.0375);
    const tg_optim_config *ra = tg_optim_get_config(oa), *rb = tg_optim_get_config(ob);
    ck_assert(ra->kind == rb->kind && ra->weight_decay == rb->weight_decay);
    ck_assert(ra->momentum == rb->momentum && ra->nesterov == rb->nesterov);
    ck_assert(ra->centered == rb->centered && ra->beta1 == rb->beta1);
    ck_assert(ra->beta2 == rb->beta2 && ra->eps == rb->eps && ra->alpha == rb->alpha);
    ck_assert(ra->lr_decay == rb->lr_decay && ra->dampening == rb->dampening);
    ck_assert(ra->initial_accumulator_value == rb->initial_accumulator_value);

    expect_saved_same("b.ckpt", "a.ckpt", b, ob, META, sizeof META);

    tg_rng rng_b = rng;
    train(a, oa, &rng, 5);
    train(b, ob, &rng_b, 5);
    ck_assert(same_values(a, b));
    ck_assert_int_eq(tg_optim_steps(ob), 10);

    free_sides(a, oa, b, ob);
    remove_tmpdir();
}
END_TEST

START_TEST(test_same_state_same_bytes)
{
    make_tmpdir();
    tg_params *ps;
    tg_optim *opt;
    save_small("a.ckpt", &ps, &opt);
    expect_saved_same("b.ckpt", "a.ckpt", ps, opt, META, sizeof META);
    /* saving over an existing file replaces it and leaves no temporary behind */
    expect_saved_same("a.ckpt", "b.ckpt", ps, opt, META, sizeof META);
    ck_assert_int_eq(access(tpath("a.ckpt.tmp"), F_OK), -1);

    /* the layout: magic, version 1, total size, CRC of everything before it */
    size_t n;
    unsigned char *b = tg_test_read_file(tpath("a.ckpt"), &n);
    ck_assert_int_eq(memcmp(b, "TAPEGRAD", 8), 0);
    ck_assert(b[8] == 1 && b[9] == 0 && b[10] == 0 && b[11] == 0);
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total |= (uint64_t)b[16 + i] << (8 * i);
    ck_assert_uint_eq(total, n);
    uint32_t crc = 0;
    for (int i = 0; i < 4; i++)
        crc |= (uint32_t)b[n - 4 + (size_t)i] << (8 * i);
    ck_assert_uint_eq(crc, tg_crc32(0, b, n - 4));
    /* the metadata is stored verbatim just before the CRC */
    ck_assert_int_eq(memcmp(b + n - 4 - sizeof META, META, sizeof META), 0);
    free(b);

    /* params only (no optimizer, no metadata) is a smaller, still valid file */
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(tpath("c.ckpt"), ps, NULL, NULL, 0, err,
                                        sizeof err), TG_OK);
    tg_params *q = model(TG_F32, 5);
    ck_assert_int_eq(tg_checkpoint_load(tpath("c.ckpt"), q, NULL, err, sizeof err), TG_OK);
    ck_assert(same_values(ps, q));
    tg_params_free(q);
    tg_optim_free(opt);
    tg_params_free(ps);
    remove_tmpdir();
}
END_TEST

/* Loads path into a fresh sentinel model + optimizer and checks it is refused with want
   and modifies nothing; also read_meta refuses it. */
static void expect_refused(const char *path, tg_status want, const char *what)
{
    tg_params *ps = model(TG_F32, 77);
    tg_params *ref = model(TG_F32, 77);
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    tg_optim *opt = tg_optim_new(ps, &c);
    char err[256] = "";
    tg_status st = tg_checkpoint_load(path, ps, opt, err, sizeof err);
    ck_assert_msg(st == want, "%s: status %d (%s), expected %d", what, st, err, want);
    ck_assert_msg(one_line(err), "%s: message '%s'", what, err);
    ck_assert_msg(same_values(ps, ref), "%s: parameters modified", what);
    ck_assert_int_eq(tg_optim_steps(opt), 0);
    ck_assert(tg_optim_get_lr(opt) == c.lr);
    void *meta = (void *)1;
    size_t msize = 1;
    if (want == TG_ERR_FORMAT) {
        ck_assert_int_eq(tg_checkpoint_read_meta(path, &meta, &msize, err, sizeof err),
                         TG_ERR_FORMAT);
        ck_assert(meta == NULL && msize == 0);
    }
    tg_optim_free(opt);
    tg_params_free(ps);
    tg_params_free(ref);
}

/* Writes the n bytes data to "bad.ckpt" and expects it refused as TG_ERR_FORMAT. */
static void refuse_bytes(const void *data, size_t n, const char *what)
{
    tg_test_write_file(tpath("bad.ckpt"), data, n);
    expect_refused(tpath("bad.ckpt"), TG_ERR_FORMAT, what);
}

/* refuse_bytes of a copy of b whose bytes-long little-endian field at off is v, with the
   CRC recomputed so that only the field is wrong. */
static void refuse_patched(const unsigned char *b, size_t n, size_t off, uint64_t v,
                           int bytes, const char *what)
{
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    put_le(c + off, v, bytes);
    fix_crc(c, n);
    refuse_bytes(c, n, what);
    free(c);
}

START_TEST(test_truncated_at_every_offset)
{
    saved s = open_saved();
    for (size_t k = 0; k < s.n; k++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", k, s.n);
        refuse_bytes(s.b, k, what);
    }
    /* the message says what happened */
    tg_test_write_file(tpath("bad.ckpt"), s.b, s.n - 100);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_load(tpath("bad.ckpt"), s.ps, s.opt, err, sizeof err),
                     TG_ERR_FORMAT);
    char want[200];
    snprintf(want, sizeof want, "%s: truncated at byte %zu (expected %zu bytes)",
             tpath("bad.ckpt"), s.n - 100, s.n);
    ck_assert_str_eq(err, want);
    close_saved(&s);
}
END_TEST

START_TEST(test_bit_flips)
{
    saved s = open_saved();
    for (size_t k = 0; k < s.n; k++) {
        for (int bit = 0; bit < 8; bit++) {
            char what[64];
            snprintf(what, sizeof what, "bit %d of byte %zu flipped", bit, k);
            s.b[k] ^= (unsigned char)(1u << bit);
            refuse_bytes(s.b, s.n, what);
            s.b[k] ^= (unsigned char)(1u << bit);
        }
    }
    /* a flipped payload bit is reported as a checksum mismatch */
    s.b[s.n / 2] ^= 0x10;
    tg_test_write_file(tpath("bad.ckpt"), s.b, s.n);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_load(tpath("bad.ckpt"), s.ps, s.opt, err, sizeof err),
                     TG_ERR_FORMAT);
    ck_assert_msg(strstr(err, "checksum mismatch") != NULL, "%s", err);
    close_saved(&s);
}
END_TEST

START_TEST(test_magic_version_extended)
{
    saved s = open_saved();
    size_t n = s.n;
    char err[256];

    /* wrong magic, "TAPEGRAF" (with a valid CRC) */
    refuse_patched(s.b, n, 7, 'F', 1, "wrong magic");
    tg_checkpoint_load(tpath("bad.ckpt"), s.ps, s.opt, err, sizeof err);
    ck_assert_msg(strstr(err, "not a tapegrad checkpoint") != NULL, "%s", err);
    refuse_bytes("hello", 5, "a text file");

    /* other versions (with a valid CRC) */
    for (uint32_t v = 0; v < 4; v++) {
        if (v == 1)
            continue;
        refuse_patched(s.b, n, 8, v, 4, "other version");
        tg_checkpoint_load(tpath("bad.ckpt"), s.ps, s.opt, err, sizeof err);
        char want[64];
        if (v == 2)   /* a version this build reads, but whose sections the file lacks */
            snprintf(want, sizeof want, "bad optimizer flag 1 for version 2");
        else
            snprintf(want, sizeof want, "format version %u is not supported", v);
        ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    }

    /* extended by 1 and by 1000 bytes */
    unsigned char *c = malloc(n + 1000);
    memcpy(c, s.b, n);
    memset(c + n, 0, 1000);
    refuse_bytes(c, n + 1, "extended by 1 byte");
    tg_checkpoint_load(tpath("bad.ckpt"), s.ps, s.opt, err, sizeof err);
    ck_assert_msg(strstr(err, "1 unexpected bytes after the end") != NULL, "%s", err);
    refuse_bytes(c, n + 1000, "extended by 1000 bytes");
    /* extended with the size field and CRC patched to match: the structure check sees
       bytes nothing accounts for */
    memcpy(c, s.b, n - 4);
    memset(c + n - 4, 'x', 8);
    put_le(c + 16, n + 8, 8);
    fix_crc(c, n + 8);
    refuse_bytes(c, n + 8, "consistently extended");
    free(c);
    close_saved(&s);
}
END_TEST

/* Files whose CRC is valid but whose counts and lengths are absurd: refused without
   allocating what they claim. Offsets follow the layout in optim/checkpoint.c. */
START_TEST(test_crafted_counts)
{
    saved s = open_saved();
    const unsigned char *b = s.b;
    struct { size_t off; uint64_t v; int bytes; const char *what; } cases[] = {
        { 12, 2, 4, "dtype code 2" },
        { 24, 0xffffffffu, 4, "4 billion parameters" },
        { 24, 5, 4, "one parameter more" },
        { 24, 3, 4, "one parameter less" },
        { 28, 2, 4, "optimizer flag 2" },
        { 28, 0, 4, "optimizer flag cleared" },
        { 32, (uint64_t)1 << 40, 8, "1 TiB of metadata" },
        { 32, 0, 8, "metadata size 0" },
        { 40, 0, 4, "empty name" },
        { 40, 64, 4, "64-byte name" },
        { 40, 0xffffffffu, 4, "4 GiB name" },
        { 49, 5, 4, "ndim 5" },
        { 49, 0, 4, "ndim 0" },
        { 53, 0, 8, "a zero dimension" },
        { 53, (uint64_t)1 << 62, 8, "2^62 rows" },
        { 53, 6, 8, "one row more" },
    };
    /* sanity: the first descriptor is "embed" at 40, its ndim at 49, first dim at 53 */
    ck_assert(b[40] == 5 && memcmp(b + 44, "embed", 5) == 0 && b[49] == 2 && b[53] == 5);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refuse_patched(b, s.n, cases[i].off, cases[i].v, cases[i].bytes, cases[i].what);
    close_saved(&s);
}
END_TEST

/* A schedule and its state survive a checkpoint: training on after a load matches
   training on without one, bit for bit, for a plateau and a warm-up + cosine schedule;
   a file without a schedule leaves the optimizer's own. */
START_TEST(test_schedule_resume)
{
    make_tmpdir();
    tg_schedule plateau = tg_schedule_defaults(TG_SCHED_PLATEAU, 0.05);
    plateau.factor = 0.5;
    plateau.patience = 1;
    plateau.cooldown = 2;
    plateau.threshold_abs = true;
    tg_schedule cosine = { .kind = TG_SCHED_COSINE, .base_lr = 0.05, .warmup_steps = 3,
                           .total_steps = 12, .warmup_start = 0.2, .min_lr = 0.001 };
    const tg_schedule *scheds[] = { &plateau, &cosine };
    const double metrics[] = { 3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 1.5, 1.6, 1.7, 1.8 };
    char err[256];
    for (int k = 0; k < 2; k++) {
        tg_params *a = model(TG_F32, 10), *b = model(TG_F32, 99);
        tg_optim_config c = full_config(TG_ADAMW);
        tg_optim *oa = tg_optim_new(a, &c), *ob = tg_optim_new(b, &c);
        ck_assert_int_eq(tg_optim_set_schedule(oa, scheds[k]), TG_OK);
        tg_rng rng;
        tg_rng_seed(&rng, 11);
        for (int i = 0; i < 5; i++) {
            train(a, oa, &rng, 1);
            ck_assert_int_eq(tg_optim_observe(oa, metrics[i]), TG_OK);
        }
        ck_assert_int_eq(tg_checkpoint_save(tpath("c.ckpt"), a, oa, META, sizeof META, err,
                                            sizeof err), TG_OK);
        unsigned char *bytes = tg_test_read_file(tpath("c.ckpt"), &(size_t){ 0 });
        ck_assert_int_eq(bytes[8], 2);   /* version 2: it has a schedule section */
        free(bytes);
        ck_assert_int_eq(tg_checkpoint_load(tpath("c.ckpt"), b, ob, err, sizeof err), TG_OK);
        ck_assert_ptr_nonnull(tg_optim_get_schedule(ob));
        ck_assert(tg_optim_get_lr(ob) == tg_optim_get_lr(oa));
        tg_rng rng_b = rng;
        for (int i = 5; i < 10; i++) {
            train(a, oa, &rng, 1);
            train(b, ob, &rng_b, 1);
            ck_assert_int_eq(tg_optim_observe(oa, metrics[i]), TG_OK);
            ck_assert_int_eq(tg_optim_observe(ob, metrics[i]), TG_OK);
            ck_assert(tg_optim_get_lr(ob) == tg_optim_get_lr(oa));
        }
        ck_assert(same_values(a, b));
        if (k == 0)   /* the plateau reduced the lr along the way */
            ck_assert(tg_optim_get_lr(oa) < 0.05);
        ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), a, oa, NULL, 0, err,
                                            sizeof err), TG_OK);
        expect_saved_same("b.ckpt", "a.ckpt", b, ob, NULL, 0);

        /* a file without a schedule (version 1) keeps the optimizer's schedule */
        tg_optim *plain = tg_optim_new(a, &c);
        ck_assert_int_eq(tg_checkpoint_save(tpath("bad.ckpt"), a, plain, NULL, 0, err,
                                            sizeof err), TG_OK);
        ck_assert_int_eq(tg_checkpoint_load(tpath("bad.ckpt"), b, ob, err, sizeof err), TG_OK);
        ck_assert_ptr_nonnull(tg_optim_get_schedule(ob));
        ck_assert(tg_optim_get_schedule(ob)->kind == scheds[k]->kind);
        tg_optim_free(plain);
        free_sides(a, oa, b, ob);
    }
    remove_tmpdir();
}
END_TEST

/* A schedule section with valid CRC but impossible contents is refused. */
START_TEST(test_schedule_section_crafted)
{
    make_tmpdir();
    tg_optim *opt;
    tg_params *ps = model_optim(TG_F32, 1, TG_SGD, &opt);
    tg_schedule s = tg_schedule_defaults(TG_SCHED_PLATEAU, 0.1);
    s.cooldown = 3;
    ck_assert_int_eq(tg_optim_set_schedule(opt, &s), TG_OK);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), ps, opt, NULL, 0, err, sizeof err),
                     TG_OK);
    size_t n;
    unsigned char *b = tg_test_read_file(tpath("a.ckpt"), &n);
    /* the schedule section, the last 4 + 4 + 8 * 12 + 8 * 3 bytes before the CRC: kind,
       flags, 12 REALs and INTs (factor the 8th, patience the 9th), the plateau state */
    size_t at = n - 4 - (8 + 8 * 12 + 8 * 3);
    ck_assert_int_eq(b[at], TG_SCHED_PLATEAU);
    struct { size_t off; uint64_t v; int bytes; const char *want; } cases[] = {
        { 0, 9, 4, "bad schedule kind or flags" },
        { 4, 2, 4, "bad schedule kind or flags" },
        { 8 + 8 * 7, 0x3ff0000000000000u, 8, "invalid factor 1" },     /* factor 1.0 */
        { 8 + 8 * 8, (uint64_t)-1, 8, "invalid patience -1" },
        { 8 + 8 * 12 + 8, (uint64_t)-1, 8, "bad plateau state" },      /* bad_calls -1 */
        { 8 + 8 * 12 + 16, 4, 8, "bad plateau state" },               /* cooldown 4 > 3 */
        { 8 + 8 * 12, 0x7ff8000000000000u, 8, "bad plateau state" },   /* best NaN */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        refuse_patched(b, n, at + cases[i].off, cases[i].v, cases[i].bytes, cases[i].want);
        tg_checkpoint_load(tpath("bad.ckpt"), ps, opt, err, sizeof err);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
    }
    /* version 2 without the schedule flag, version 1 with it */
    refuse_patched(b, n, 28, 1, 4, "version 2 without a schedule");
    refuse_patched(b, n, 8, 1, 4, "version 1 with a schedule");
    free(b);
    tg_optim_free(opt);
    tg_params_free(ps);
    remove_tmpdir();
}
END_TEST

START_TEST(test_model_mismatch)
{
    saved s = open_saved();
    char err[256];

    /* other shape of "bias" */
    tg_params *q = params4(TG_F32, 5, 3, 4, "h");
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err),
                     TG_ERR_SHAPE);
    char want[256];
    snprintf(want, sizeof want, "%s: parameter 2 is 'bias' (3) in the file but 'bias' (4) "
             "in the model", tpath("a.ckpt"));
    ck_assert_str_eq(err, want);
    ck_assert(tg_tensor_get(tg_params_at(q, 0), 0) == 0.5f);   /* untouched */
    tg_params_free(q);

    /* same shapes, other name */
    q = params4(TG_F32, 5, 3, 3, "c");
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err),
                     TG_ERR_SHAPE);
    ck_assert_msg(strstr(err, "'h' (2,2) in the file but 'c' (2,2)") != NULL, "%s", err);
    tg_params_free(q);

    /* same shape, transposed 2-D */
    q = params4(TG_F32, 3, 5, 3, "h");
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err),
                     TG_ERR_SHAPE);
    tg_params_free(q);

    /* fewer parameters */
    q = tg_params_new(TG_F32);
    tg_params_add(q, "embed", 2, (const int64_t[]){ 5, 3 });
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err),
                     TG_ERR_SHAPE);
    ck_assert_msg(strstr(err, "holds 4 parameters, the model has 1") != NULL, "%s", err);
    tg_params_free(q);

    /* f64 model, f32 file */
    q = model(TG_F64, 3);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err),
                     TG_ERR_DTYPE);
    ck_assert(one_line(err));
    tg_params_free(q);

    close_saved(&s);
}
END_TEST

START_TEST(test_optimizer_mismatch)
{
    saved s = open_saved();   /* Adam state */
    char err[256];

    tg_params *q = model(TG_F32, 3), *ref = model(TG_F32, 3);
    tg_optim_config c = tg_optim_defaults(TG_SGD);
    tg_optim *sgd = tg_optim_new(q, &c);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, sgd, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "holds adam state, the optimizer is sgd") != NULL, "%s", err);
    ck_assert(same_values(q, ref));
    ck_assert_str_eq(tg_last_error(), err);   /* the thread's reason is the same */
    /* an optimizer made over other params: load and save say so alike */
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), s.ps, sgd, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "the optimizer was made for another tg_params") != NULL, "%s",
                  err);
    ck_assert_int_eq(tg_checkpoint_save(tpath("b.ckpt"), s.ps, sgd, NULL, 0, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "the optimizer was made for another tg_params") != NULL, "%s",
                  err);
    ck_assert_str_eq(tg_last_error(), err);
    ck_assert(one_line(err));
    ck_assert_int_eq(access(tpath("b.ckpt"), F_OK), -1);
    /* an lr no config may hold (a schedule gone wrong) would make an unloadable file */
    tg_optim_set_lr(s.opt, NAN);
    ck_assert_int_eq(tg_checkpoint_save(tpath("b.ckpt"), s.ps, s.opt, NULL, 0, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "invalid lr") != NULL && one_line(err), "%s", err);
    ck_assert_int_eq(access(tpath("b.ckpt"), F_OK), -1);
    tg_optim_set_lr(s.opt, 0.05);

    /* a file without optimizer state cannot restore an optimizer ... */
    ck_assert_int_eq(tg_checkpoint_save(tpath("c.ckpt"), s.ps, NULL, NULL, 0, err, sizeof err),
                     TG_OK);
    ck_assert_int_eq(tg_checkpoint_load(tpath("c.ckpt"), q, sgd, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "holds no optimizer state") != NULL, "%s", err);
    ck_assert(same_values(q, ref));
    /* ... but a file with one loads into params alone */
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, NULL, err, sizeof err), TG_OK);
    ck_assert(same_values(q, s.ps));
    ck_assert_str_eq(err, "");

    /* parameters added after the optimizer was made: both refuse */
    ck_assert_ptr_nonnull(tg_params_add(q, "late", 1, (const int64_t[]){ 2 }));
    ck_assert_int_eq(tg_checkpoint_save(tpath("d.ckpt"), q, sgd, NULL, 0, err, sizeof err),
                     TG_ERR_ARG);
    ck_assert_msg(strstr(err, "parameters were added after the optimizer was made") != NULL,
                  "%s", err);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, sgd, NULL, 0), TG_ERR_ARG);
    ck_assert_msg(strstr(tg_last_error(), "parameters were added after the optimizer was "
                         "made") != NULL, "%s", tg_last_error());

    tg_optim_free(sgd);
    tg_params_free(q);
    tg_params_free(ref);
    close_saved(&s);
}
END_TEST

/* Every failure to write returns TG_ERR_IO with the system's reason, leaves the previous
   file intact and no temporary file behind. */
START_TEST(test_unwritable)
{
    saved s = open_saved();
    tg_optim_set_lr(s.opt, 0.5);   /* another state, so a save would change the bytes */
    char err[256], want[256];

    /* no such directory */
    ck_assert_int_eq(tg_checkpoint_save("/nonexistent-dir-tapegrad/x.ckpt", s.ps, s.opt, NULL,
                                        0, err, sizeof err), TG_ERR_IO);
    ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL && one_line(err), "%s", err);

    /* the temporary name is taken by a directory: open fails */
    ck_assert_int_eq(mkdir(tpath("a.ckpt.tmp"), 0700), 0);
    ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), s.ps, s.opt, META, sizeof META, err,
                                        sizeof err), TG_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot open %s: %s", tpath("a.ckpt"),
             tpath("a.ckpt.tmp"), strerror(EISDIR));
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(rmdir(tpath("a.ckpt.tmp")), 0);
    size_t n1;
    unsigned char *after = tg_test_read_file(tpath("a.ckpt"), &n1);
    ck_assert(s.n == n1 && memcmp(s.b, after, s.n) == 0);
    free(after);

    /* the disk is full mid-write (the temporary is a link to /dev/full) */
    if (access("/dev/full", W_OK) == 0) {
        ck_assert_int_eq(symlink("/dev/full", tpath("a.ckpt.tmp")), 0);
        ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), s.ps, s.opt, META, sizeof META,
                                            err, sizeof err), TG_ERR_IO);
        ck_assert_msg(strstr(err, strerror(ENOSPC)) != NULL && one_line(err), "%s", err);
        struct stat sb;
        ck_assert_int_eq(lstat(tpath("a.ckpt.tmp"), &sb), -1);   /* removed */
        after = tg_test_read_file(tpath("a.ckpt"), &n1);
        ck_assert(s.n == n1 && memcmp(s.b, after, s.n) == 0);
        free(after);
    }

    /* the target is a directory: the rename fails, the temporary is removed */
    ck_assert_int_eq(mkdir(tpath("dir.ckpt"), 0700), 0);
    tg_test_write_file(tpath("dir.ckpt/x"), "keep", 4);
    ck_assert_int_eq(tg_checkpoint_save(tpath("dir.ckpt"), s.ps, s.opt, NULL, 0, err,
                                        sizeof err), TG_ERR_IO);
    ck_assert_msg(strstr(err, "cannot rename") != NULL && one_line(err), "%s", err);
    ck_assert_int_eq(access(tpath("dir.ckpt.tmp"), F_OK), -1);
    ck_assert_int_eq(access(tpath("dir.ckpt/x"), F_OK), 0);

    /* the old file still loads and restores the old state */
    tg_params *q = model(TG_F32, 1);
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    tg_optim *oq = tg_optim_new(q, &c);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), q, oq, err, sizeof err), TG_OK);
    ck_assert(tg_optim_get_lr(oq) == 0.05);
    tg_optim_free(oq);
    tg_params_free(q);
    close_saved(&s);
}
END_TEST

START_TEST(test_read_meta)
{
    saved s = open_saved();
    void *meta = NULL;
    size_t size = 0;
    char err[256];
    ck_assert_int_eq(tg_checkpoint_read_meta(tpath("a.ckpt"), &meta, &size, err,
                                             sizeof err), TG_OK);
    ck_assert_uint_eq(size, sizeof META);
    ck_assert_int_eq(memcmp(meta, META, sizeof META), 0);
    free(meta);

    /* no metadata: NULL, 0 */
    ck_assert_int_eq(tg_checkpoint_save(tpath("b.ckpt"), s.ps, s.opt, NULL, 0, err, sizeof err),
                     TG_OK);
    ck_assert_int_eq(tg_checkpoint_read_meta(tpath("b.ckpt"), &meta, &size, err,
                                             sizeof err), TG_OK);
    ck_assert(meta == NULL && size == 0);

    /* a few MiB of binary metadata (larger than the writer's buffer) */
    size_t big = 3u << 20;
    unsigned char *m = malloc(big);
    for (size_t i = 0; i < big; i++)
        m[i] = (unsigned char)(i * 2654435761u >> 13);
    ck_assert_int_eq(tg_checkpoint_save(tpath("c.ckpt"), s.ps, s.opt, m, big, err, sizeof err),
                     TG_OK);
    ck_assert_int_eq(tg_checkpoint_read_meta(tpath("c.ckpt"), &meta, &size, err,
                                             sizeof err), TG_OK);
    ck_assert(size == big && memcmp(meta, m, big) == 0);
    free(meta);
    free(m);

    /* missing file, NULL arguments */
    ck_assert_int_eq(tg_checkpoint_read_meta(tpath("missing.ckpt"), &meta, &size, err,
                                             sizeof err), TG_ERR_IO);
    ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL && one_line(err), "%s", err);
    ck_assert_int_eq(tg_checkpoint_read_meta(NULL, &meta, &size, err, sizeof err),
                     TG_ERR_NULL);
    ck_assert_int_eq(tg_checkpoint_read_meta(tpath("a.ckpt"), NULL, &size, NULL, 0),
                     TG_ERR_NULL);
    /* a directory is not a checkpoint */
    ck_assert_int_eq(tg_checkpoint_read_meta(tmpdir, &meta, &size, err, sizeof err),
                     TG_ERR_IO);
    close_saved(&s);
}
END_TEST

START_TEST(test_null_arguments)
{
    make_tmpdir();
    tg_params *ps = model(TG_F32, 1);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(NULL, ps, NULL, NULL, 0, err, sizeof err),
                     TG_ERR_NULL);
    ck_assert(one_line(err));
    ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), NULL, NULL, NULL, 0, err,
                                        sizeof err), TG_ERR_NULL);
    ck_assert_int_eq(tg_checkpoint_save(tpath("a.ckpt"), ps, NULL, NULL, 5, NULL, 0),
                     TG_ERR_NULL);
    ck_assert_int_eq(tg_checkpoint_load(NULL, ps, NULL, err, sizeof err), TG_ERR_NULL);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), NULL, NULL, err, sizeof err),
                     TG_ERR_NULL);
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), ps, NULL, err, sizeof err),
                     TG_ERR_IO);
    ck_assert_int_eq(access(tpath("a.ckpt"), F_OK), -1);
    /* a tiny error buffer is filled, truncated, and terminated */
    char small[8];
    ck_assert_int_eq(tg_checkpoint_load(tpath("a.ckpt"), ps, NULL, small, sizeof small),
                     TG_ERR_IO);
    ck_assert_uint_eq(strlen(small), 7);
    tg_params_free(ps);
    remove_tmpdir();
}
END_TEST

Suite *checkpoint_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("roundtrip", 0),
        TG_TEST(test_crc32),
        TG_LOOP(test_roundtrip_bit_exact, 10),
        TG_TEST(test_same_state_same_bytes),
        TG_TEST(test_schedule_resume),
        TG_TEST(test_schedule_section_crafted),
        TG_TEST(test_read_meta),
        TG_TEST(test_null_arguments),
        TG_CASE("refused", 120),
        TG_TEST(test_truncated_at_every_offset),
        TG_TEST(test_bit_flips),
        TG_TEST(test_magic_version_extended),
        TG_TEST(test_crafted_counts),
        TG_TEST(test_model_mismatch),
        TG_TEST(test_optimizer_mismatch),
        TG_TEST(test_unwritable),
    };
    return TG_TEST_SUITE("checkpoint", rows);
}
