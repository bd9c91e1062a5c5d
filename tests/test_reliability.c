/* tests/test_reliability.c: refusal of consistent-looking corrupt checkpoints, saves that
   fail (file-size limit, full and read-only file systems), NaN gradients, tape
   allocation failure through a whole char-LM loss, and memory that stays flat. */
#define _GNU_SOURCE   /* unshare, mount namespaces, mallinfo2 */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/tensor_internal.h"   /* tg_crc32 */
#include "tests/tests.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- helpers ---------------------------------------------------------------------- */

static char dir[64];

/* A fresh directory, in /dev/shm when there is one (thousands of small files). */
static void make_dir(void)
{
    strcpy(dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/tg_rel_XXXXXX" : "/tmp/tg_rel_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* dir/name, in one of four rotating buffers. */
static const char *at(const char *name)
{
    return tg_test_join(dir, name);
}

static void remove_dir(void)
{
    const char *names[] = { "a.ckpt", "a.ckpt.tmp", "bad.ckpt", "fill" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        remove(at(names[i]));
    rmdir(dir);
}

static bool same_file(const char *path, const unsigned char *want, size_t n)
{
    size_t m;
    unsigned char *b = tg_test_read_file(path, &m);
    bool eq = m == n && memcmp(b, want, n) == 0;
    free(b);
    return eq;
}

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *b, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* Makes an image self-consistent: the header's size field says n, the CRC is right. */
static void fix_size_and_crc(unsigned char *b, size_t n)
{
    if (n >= 24)
        put_le(b + 16, n, 8);
    if (n >= 4)
        put_le(b + n - 4, tg_crc32(0, b, n - 4), 4);
}

/* A one-line message: not empty, no control characters. */
static bool one_line(const char *msg)
{
    if (!msg[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Parameters shaped like a small char-LM's. */
static tg_params *small_model(uint64_t seed)
{
    tg_params *ps = tg_params_new(TG_F32);
    ck_assert_ptr_nonnull(tg_params_add(ps, "rnn.0.forget.w", 2, (const int64_t[]){ 7, 3 }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "rnn.0.forget.b", 1, (const int64_t[]){ 3 }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "head.w", 2, (const int64_t[]){ 3, 4 }));
    ck_assert_ptr_nonnull(tg_params_add(ps, "head.b", 1, (const int64_t[]){ 4 }));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor_fill_uniform(tg_params_at(ps, i), &rng, -1.0, 1.0);
        tg_tensor *t = tg_params_at(ps, i);
        for (int64_t k = 0; k < t->numel; k++)
            ((float *)t->grad)[k] = (float)tg_rng_normal(&rng);
    }
    return ps;
}

/* Bytes of every parameter value, concatenated (caller frees). */
static unsigned char *values_of(tg_params *ps, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < tg_params_count(ps); i++)
        total += (size_t)tg_params_at(ps, i)->numel * tg_dtype_size(tg_params_dtype(ps));
    unsigned char *b = malloc(total), *p = b;
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        size_t k = (size_t)t->numel * tg_dtype_size(t->dtype);
        memcpy(p, t->data, k);
        p += k;
    }
    *n = total;
    return b;
}

static bool values_are(tg_params *ps, const unsigned char *want, size_t n)
{
    size_t m;
    unsigned char *b = values_of(ps, &m);
    bool eq = m == n && memcmp(b, want, n) == 0;
    free(b);
    return eq;
}

static const char META[] = "vocab+config+rng";

/* Saves small_model(1) with one Adam step and META to path; returns the file's bytes. */
static unsigned char *save_reference(const char *path, size_t *n)
{
    tg_params *ps = small_model(1);
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    tg_optim *opt = tg_optim_new(ps, &c);
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    char err[256];
    ck_assert_int_eq(tg_checkpoint_save(path, ps, opt, META, sizeof META, err, sizeof err),
                     TG_OK);
    tg_optim_free(opt);
    tg_params_free(ps);
    return tg_test_read_file(path, n);
}

/* Loads path into small_model(2) + a fresh Adam and asserts it is refused cleanly: an
   error status, a one-line message, nothing modified. Returns the status. */
static tg_status expect_refused(const char *path, const char *what)
{
    tg_params *ps = small_model(2);
    tg_optim_config c = tg_optim_defaults(TG_ADAM);
    tg_optim *opt = tg_optim_new(ps, &c);
    size_t nv;
    unsigned char *before = values_of(ps, &nv);
    char err[256] = "";
    tg_status st = tg_checkpoint_load(path, ps, opt, err, sizeof err);
    ck_assert_msg(st != TG_OK, "%s: accepted", what);
    ck_assert_msg(st == TG_ERR_FORMAT || st == TG_ERR_SHAPE || st == TG_ERR_DTYPE
                      || st == TG_ERR_ARG, "%s: status %d (%s)", what, st, err);
    ck_assert_msg(one_line(err), "%s: message '%s'", what, err);
    ck_assert_msg(values_are(ps, before, nv), "%s: parameters modified", what);
    ck_assert_msg(tg_optim_steps(opt) == 0 && tg_optim_get_lr(opt) == c.lr,
                  "%s: optimizer modified", what);
    free(before);
    tg_optim_free(opt);
    tg_params_free(ps);
    return st;
}

/* ---- checkpoints that look consistent but are not ----------------------------------- */

/* Every bit of the header, of the parameter table and of the optimizer section's kind,
   padding, buffer count and buffer names flipped, with the CRC recomputed: the field
   checks, not the checksum, must refuse each one. (tests/test_checkpoint.c flips every
   bit with the CRC left stale.) */
START_TEST(test_header_bits_with_valid_crc)
{
    make_dir();
    size_t n;
    unsigned char *b = save_reference(at("a.ckpt"), &n);
    /* walk the layout: 40-byte header, descriptors, data, optimizer section */
    uint32_t np = (uint32_t)get_le(b + 24, 4);
    size_t pos = 40;
    uint64_t numel = 0;
    for (uint32_t i = 0; i < np; i++) {
        pos += 4 + get_le(b + pos, 4);
        uint32_t nd = (uint32_t)get_le(b + pos, 4);
        pos += 4;
        uint64_t e = 1;
        for (uint32_t d = 0; d < nd; d++, pos += 8)
            e *= get_le(b + pos, 8);
        numel += e;
    }
    /* the optimizer section: u32 kind, u8 nesterov, u8 centered (flags a kind ignores may
       be set), u16 zero, 10 doubles and the step count (other valid values exist), then
       the buffer count and names */
    size_t opt_pos = pos + 4 * (size_t)numel;
    size_t names_pos = opt_pos + 8 + 80 + 8;
    uint32_t nbufs = (uint32_t)get_le(b + names_pos, 4);
    size_t names_end = names_pos + 4;
    for (uint32_t k = 0; k < nbufs; k++)
        names_end += 4 + get_le(b + names_end, 4);
    size_t ranges[4][2] = { { 0, pos }, { opt_pos, opt_pos + 4 }, { opt_pos + 6, opt_pos + 8 },
                            { names_pos, names_end } };
    int expected = 0;
    for (int r = 0; r < 4; r++)
        expected += 8 * (int)(ranges[r][1] - ranges[r][0]);
    expected -= 8 * 8;   /* the size field */
    int refused = 0;
    for (int r = 0; r < 4; r++) {
        for (size_t k = ranges[r][0]; k < ranges[r][1]; k++) {
            for (int bit = 0; bit < 8; bit++) {
                if (k >= 16 && k < 24)
                    continue;   /* the size field: covered by the truncation test below */
                char what[96];
                snprintf(what, sizeof what, "bit %d of byte %zu flipped, CRC fixed", bit, k);
                b[k] ^= (unsigned char)(1u << bit);
                put_le(b + n - 4, tg_crc32(0, b, n - 4), 4);
                tg_test_write_file(at("bad.ckpt"), b, n);
                expect_refused(at("bad.ckpt"), what);
                refused++;
                b[k] ^= (unsigned char)(1u << bit);
            }
        }
    }
    put_le(b + n - 4, tg_crc32(0, b, n - 4), 4);
    ck_assert(same_file(at("a.ckpt"), b, n));   /* the walk restored every bit */
    ck_assert_int_eq(refused, expected);
    free(b);
    remove_dir();
}
END_TEST

/* Truncated at every offset, and extended by 1..16 bytes, with the size field and the
   CRC made consistent with the new length: the structure walk must notice. */
START_TEST(test_truncated_with_consistent_header)
{
    make_dir();
    size_t n;
    unsigned char *b = save_reference(at("a.ckpt"), &n);
    unsigned char *c = malloc(n + 16);
    for (size_t k = 0; k < n + 16; k++) {
        if (k == n)
            continue;
        memcpy(c, b, k < n ? k : n);
        if (k > n)
            memset(c + n - 4, 0x5a, k - n + 4);   /* extra bytes where the CRC was */
        fix_size_and_crc(c, k);
        tg_test_write_file(at("bad.ckpt"), c, k);
        char what[96];
        snprintf(what, sizeof what, "resized to %zu of %zu bytes, size and CRC fixed", k, n);
        tg_status st = expect_refused(at("bad.ckpt"), what);
        ck_assert_msg(st == TG_ERR_FORMAT, "%s: status %d", what, st);
        void *meta = (void *)1;
        size_t msize = 1;
        char err[256];
        ck_assert_int_eq(tg_checkpoint_read_meta(at("bad.ckpt"), &meta, &msize, err,
                                                 sizeof err), TG_ERR_FORMAT);
        ck_assert(meta == NULL && msize == 0);
    }
    free(c);
    free(b);
    remove_dir();
}
END_TEST

/* ---- saves that fail ------------------------------------------------------------------ */

/* Saves another state (big: ~190 kB) to path and asserts TG_ERR_IO whose message holds reason, the
   previous bytes (prev, n) still in place and no temporary file left. */
static void expect_save_fails(const char *path, const unsigned char *prev, size_t n,
                              const char *reason, bool big)
{
    tg_params *ps = small_model(3);
    if (big)   /* 64 kB of values and 128 kB of optimizer state: fails part-way */
        ck_assert_ptr_nonnull(tg_params_add(ps, "big", 2, (const int64_t[]){ 128, 128 }));
    tg_optim_config c = tg_optim_defaults(TG_RMSPROP);
    tg_optim *opt = tg_optim_new(ps, &c);
    char err[512] = "", tmp[200];
    tg_status st = tg_checkpoint_save(path, ps, opt, META, sizeof META, err, sizeof err);
    ck_assert_msg(st == TG_ERR_IO, "save to %s: status %d (%s), expected TG_ERR_IO", path,
                  st, err);
    ck_assert_msg(strstr(err, reason) != NULL && one_line(err), "message '%s' lacks '%s'",
                  err, reason);
    ck_assert_msg(same_file(path, prev, n), "%s: the previous checkpoint changed", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(access(tmp, F_OK) != 0, "%s left behind", tmp);
    /* and it still loads */
    tg_params *q = small_model(4);
    tg_optim_config ca = tg_optim_defaults(TG_ADAM);
    tg_optim *oq = tg_optim_new(q, &ca);
    ck_assert_int_eq(tg_checkpoint_load(path, q, oq, err, sizeof err), TG_OK);
    ck_assert_int_eq(tg_optim_steps(oq), 1);
    tg_optim_free(oq);
    tg_params_free(q);
    tg_optim_free(opt);
    tg_params_free(ps);
}

/* A file-size limit (what a quota or a full disk does to a write, without privileges):
   the write fails with EFBIG part-way through. */
START_TEST(test_save_file_size_limit)
{
    make_dir();
    size_t n;
    unsigned char *prev = save_reference(at("a.ckpt"), &n);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);   /* else the kernel kills us instead of failing write() */
    struct rlimit lim = { (rlim_t)n / 2, old.rlim_max };
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    expect_save_fails(at("a.ckpt"), prev, n, strerror(EFBIG), false);
    /* a limit of 0: even the first bytes fail */
    lim.rlim_cur = 0;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    expect_save_fails(at("a.ckpt"), prev, n, strerror(EFBIG), false);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    free(prev);
    remove_dir();
}
END_TEST

/* Enters a private mount namespace (this test's process only). False when the system
   does not allow it (not root, no CAP_SYS_ADMIN, seccomp). */
static bool private_mounts(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        return false;
    return mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

/* A full file system and a read-only one: a small tmpfs in a private mount namespace
   when the test may mount (root), else (as a normal user) a directory without write
   permission. */
START_TEST(test_save_full_and_readonly_fs)
{
    make_dir();
    if (!private_mounts()) {
        if (geteuid() != 0) {
            size_t n;
            unsigned char *prev = save_reference(at("a.ckpt"), &n);
            ck_assert_int_eq(chmod(dir, 0555), 0);
            expect_save_fails(at("a.ckpt"), prev, n, strerror(EACCES), false);
            ck_assert_int_eq(chmod(dir, 0755), 0);
            free(prev);
        } else {
            fprintf(stderr, "test_save_full_and_readonly_fs: cannot mount here (%s); the "
                    "file-size-limit test covers failing writes\n", strerror(errno));
        }
        remove_dir();
        return;
    }
    ck_assert_msg(mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700") == 0, "mount: %s",
                  strerror(errno));
    size_t n;
    unsigned char *prev = save_reference(at("a.ckpt"), &n);

    /* full: fill what is left, then save */
    FILE *f = fopen(at("fill"), "wb");
    ck_assert_ptr_nonnull(f);
    static const char block[4096];
    long filled = 0;
    while (fwrite(block, 1, sizeof block, f) == sizeof block)
        filled += (long)sizeof block;
    fclose(f);
    expect_save_fails(at("a.ckpt"), prev, n, strerror(ENOSPC), false);
    /* 64 kB free: a big save fails part-way through its data */
    ck_assert_int_gt(filled, 65536);
    ck_assert_int_eq(truncate(at("fill"), filled - 65536), 0);
    expect_save_fails(at("a.ckpt"), prev, n, strerror(ENOSPC), true);
    remove(at("fill"));

    /* read-only */
    ck_assert_int_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, "size=256k"), 0);
    expect_save_fails(at("a.ckpt"), prev, n, strerror(EROFS), false);
    ck_assert_int_eq(umount(dir), 0);
    free(prev);
    remove_dir();
}
END_TEST

/* ---- non-finite gradients --------------------------------------------------------------- */

/* A NaN, +inf or -inf in one gradient element (loop: 5 optimizer kinds x 3 values):
   clipping reports a non-finite norm and changes nothing, the step refuses with
   TG_ERR_NONFINITE and changes nothing, and once the gradient is finite it works. */
START_TEST(test_nonfinite_gradient_refused)
{
    tg_optim_kind kind = (tg_optim_kind)(_i / 3);
    double bad = _i % 3 == 0 ? NAN : _i % 3 == 1 ? INFINITY : -INFINITY;
    tg_params *ps = small_model(5);
    tg_optim_config c = tg_optim_defaults(kind);
    if (kind == TG_SGD)
        c.momentum = 0.9;
    tg_optim *opt = tg_optim_new(ps, &c);
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);   /* some state first */
    tg_tensor *w = tg_params_at(ps, 2);
    float *g = w->grad;
    float saved = g[5];
    g[5] = (float)bad;
    size_t nv;
    unsigned char *before = values_of(ps, &nv);
    float g0 = ((float *)tg_params_at(ps, 0)->grad)[0];

    double norm = tg_clip_grad_norm(ps, 1.0);
    ck_assert_msg(!isfinite(norm), "clip returned %g", norm);
    if (isnan(bad))
        ck_assert(isnan(norm));
    ck_assert(((float *)tg_params_at(ps, 0)->grad)[0] == g0);   /* not applied */
    tg_clip_grad_value(ps, 0.5);                                  /* keeps the NaN/inf */
    ck_assert(isnan(bad) ? isnan(g[5]) : g[5] == (float)(bad > 0 ? 0.5 : -0.5));
    g[5] = (float)bad;

    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_NONFINITE);
    ck_assert_str_eq(tg_status_str(TG_ERR_NONFINITE), "non-finite value");
    ck_assert(values_are(ps, before, nv));
    ck_assert_int_eq(tg_optim_steps(opt), 1);

    g[5] = saved;
    ck_assert(isfinite(tg_clip_grad_norm(ps, 1.0)));
    ck_assert_int_eq(tg_optim_step(opt), TG_OK);
    ck_assert_int_eq(tg_optim_steps(opt), 2);
    ck_assert(!values_are(ps, before, nv));
    free(before);
    tg_optim_free(opt);
    tg_params_free(ps);
}
END_TEST

/* ---- a char-LM ------------------------------------------------------------------------------ */

typedef struct lm {
    tg_params *ps;
    tg_charlm m;
    tg_stack_state *state;
    int64_t B, T;
    int V;
    int32_t *in, *tg;   /* (B,T) inputs and targets */
} lm;

/* A 2-layer char-LM of cell (embed 0: one-hot) with V symbols and H hidden units, its
   state for batch B, and fixed (B,T) inputs and targets. */
static void lm_init(lm *x, const char *cell, int embed, int V, int H, int64_t B, int64_t T)
{
    x->ps = tg_params_new(TG_F32);
    tg_charlm_config cfg = { tg_test_cell_type(cell), V, 2, H, embed, 0.0 };
    tg_init init = { TG_INIT_UNIFORM, 0.3, false };
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    ck_assert_int_eq(tg_charlm_init(&x->m, x->ps, &cfg, &init, &rng), TG_OK);
    x->state = tg_stack_state_new(&x->m.rnn, TG_F32, B);
    ck_assert_ptr_nonnull(x->state);
    x->B = B;
    x->T = T;
    x->V = V;
    x->in = malloc((size_t)(B * T) * sizeof *x->in);
    x->tg = malloc((size_t)(B * T) * sizeof *x->tg);
    for (int64_t i = 0; i < B * T; i++) {
        x->in[i] = (int32_t)((i * 7 + 3) % V);
        x->tg[i] = (int32_t)((i * 5 + 1) % V);
    }
}

static void lm_free(lm *x)
{
    free(x->in);
    free(x->tg);
    tg_stack_state_free(x->state);
    tg_charlm_deinit(&x->m);
    tg_params_free(x->ps);
}

static tg_tensor *lm_loss(tg_tape *tape, lm *x, bool training, tg_rng *rng)
{
    return tg_charlm_loss(tape, &x->m, x->in, x->tg, x->B, x->T, x->state, training, rng);
}

/* The values of every tensor of a stack state, concatenated (caller frees). */
static float *state_values(const tg_stack_state *s, size_t *n)
{
    size_t total = 0;
    for (int l = 0; l < s->layers; l++)
        for (int k = 0; k < s->nstate; k++)
            total += (size_t)s->tensors[l][k]->numel;
    float *v = malloc(total * sizeof *v), *p = v;
    for (int l = 0; l < s->layers; l++) {
        for (int k = 0; k < s->nstate; k++) {
            memcpy(p, s->tensors[l][k]->data, (size_t)s->tensors[l][k]->numel * sizeof *v);
            p += s->tensors[l][k]->numel;
        }
    }
    *n = total;
    return v;
}

/* Writes values (as state_values returns them) back into s. */
static void set_state(tg_stack_state *s, const float *v)
{
    for (int l = 0; l < s->layers; l++) {
        for (int k = 0; k < s->nstate; k++) {
            memcpy(s->tensors[l][k]->data, v, (size_t)s->tensors[l][k]->numel * sizeof *v);
            v += s->tensors[l][k]->numel;
        }
    }
}

/* A NaN in a weight: the loss is NaN, every gradient that depends on it too, clipping
   returns NaN and the optimizer refuses to step, leaving every weight as it was. */
START_TEST(test_nan_weight_through_charlm)
{
    lm x;
    lm_init(&x, "lstm", 0, 11, 8, 3, 5);
    tg_tensor *w = tg_params_at(x.ps, 0);
    ((float *)w->data)[1] = NAN;
    tg_tape *tape = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *loss = lm_loss(tape, &x, true, &rng);
    ck_assert_ptr_nonnull(loss);
    ck_assert(isnan(tg_tensor_get(loss, 0)));
    tg_params_zero_grad(x.ps);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    tg_optim_config c = tg_optim_defaults(TG_RMSPROP);
    tg_optim *opt = tg_optim_new(x.ps, &c);
    size_t nv;
    unsigned char *before = values_of(x.ps, &nv);
    ck_assert(isnan(tg_clip_grad_norm(x.ps, 5.0)));
    ck_assert_int_eq(tg_optim_step(opt), TG_ERR_NONFINITE);
    ck_assert(values_are(x.ps, before, nv));
    free(before);
    tg_optim_free(opt);
    tg_tape_free(tape);
    lm_free(&x);
}
END_TEST

/* The tape capped at 1, 2, 3, ... arena chunks (1 MiB each; a 2-layer char-LM whose
   forward+backward needs 5 or 6 of them, so each cap fails at another op of the forward or
   the backward pass; loop: RNN, LSTM, GRU+embedding): each run fails with TG_ERR_NOMEM
   and a one-line message, or succeeds; a failed loss leaves the carried state as it
   was; nothing crashes or leaks (ASan/LeakSanitizer under make san). Uncapped after a
   reset, the same tape works and the loss is bit-identical to the reference. */
START_TEST(test_tape_memory_limit_through_charlm)
{
    const char *kind = tg_test_builtin_cells[_i];
    lm x;
    lm_init(&x, kind, _i == 2 ? 16 : 0, 40, 64, 16, _i == 0 ? 96 : 32);
    for (int l = 0; l < x.state->layers; l++) {   /* a carried, non-zero state */
        for (int64_t k = 0; k < x.state->tensors[l][0]->numel; k++)
            ((float *)x.state->tensors[l][0]->data)[k] = 0.1f * (float)(k % 7) - 0.3f;
        if (x.state->tensors[l][1])
            for (int64_t k = 0; k < x.state->tensors[l][1]->numel; k++)
                ((float *)x.state->tensors[l][1]->data)[k] = 0.05f * (float)(k % 5);
    }
    size_t ns;
    float *state0 = state_values(x.state, &ns);

    /* the reference: uncapped */
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = lm_loss(tape, &x, false, NULL);
    ck_assert_ptr_nonnull(loss);
    double ref = tg_tensor_get(loss, 0);
    tg_params_zero_grad(x.ps);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    size_t peak = tg_tape_bytes_peak(tape);
    tg_tape_free(tape);
    set_state(x.state, state0);
    const size_t chunk = (size_t)1 << 20;
    ck_assert_msg(peak > 4 * chunk, "the model needs only %zu bytes of tape", peak);

    int fwd_fail = 0, bwd_fail = 0, ok = 0;
    for (size_t k = 1; ok == 0 && k <= peak / chunk + 4; k++) {
        {
            size_t limit = k * chunk;   /* room for k chunks */
            tape = tg_tape_new();
            ck_assert_ptr_nonnull(tape);
            tg_tape_set_memory_limit(tape, limit);
            loss = lm_loss(tape, &x, false, NULL);
            if (!loss) {
                ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
                ck_assert_msg(one_line(tg_tape_errmsg(tape)), "'%s'", tg_tape_errmsg(tape));
                size_t n2;
                float *s2 = state_values(x.state, &n2);
                ck_assert_msg(n2 == ns && memcmp(s2, state0, ns * sizeof *s2) == 0,
                              "a failed loss (cap %zu) changed the carried state", limit);
                free(s2);
                fwd_fail++;
            } else {
                ck_assert(tg_tensor_get(loss, 0) == ref);
                tg_params_zero_grad(x.ps);
                tg_status st = tg_backward(tape, loss);
                ck_assert_msg(st == TG_OK || st == TG_ERR_NOMEM, "backward: %d", st);
                if (st == TG_OK) {
                    ok++;
                } else {
                    ck_assert(one_line(tg_tape_errmsg(tape)));
                    bwd_fail++;
                }
                set_state(x.state, state0);
            }
            /* the same tape, uncapped after a reset, works again */
            tg_tape_reset(tape);
            tg_tape_set_memory_limit(tape, 0);
            loss = lm_loss(tape, &x, false, NULL);
            ck_assert_ptr_nonnull(loss);
            ck_assert(tg_tensor_get(loss, 0) == ref);
            set_state(x.state, state0);
            tg_tape_free(tape);
        }
    }
    fprintf(stderr, "tape cap %s: %zu bytes needed; %d caps failed in the forward pass, "
            "%d in backward, then it fit\n", kind, peak, fwd_fail,
            bwd_fail);
    ck_assert_int_ge(fwd_fail, 3);
    ck_assert_int_ge(bwd_fail, 2);
    ck_assert_int_gt(ok, 0);
    free(state0);
    lm_free(&x);
}
END_TEST

/* ---- memory stays flat ------------------------------------------------------------------- */

/* Peak resident set (VmHWM) of this process in kB, or -1. */
static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* 400 training steps of a char-LM (truncated BPTT, RMSprop, clipping): from the second
   step on the tape mallocs nothing and its peak does not move, the heap in use is the
   same after step 400 as after step 50, and so is the peak RSS (within 64 kB). No Check
   assertion runs inside the loop: each one allocates in Check's own bookkeeping. */
START_TEST(test_training_memory_flat)
{
    lm x;
    lm_init(&x, "lstm", 0, 11, 16, 4, 8);
    tg_tape *tape = tg_tape_new();
    tg_optim_config c = tg_optim_defaults(TG_RMSPROP);
    c.lr = 2e-3;
    tg_optim *opt = tg_optim_new(x.ps, &c);
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    int64_t mallocs2 = 0;
    size_t peak2 = 0, heap50 = 0;
    long hwm50 = 0;
    char failure[200] = "";
    int64_t n = x.B * x.T;
    (void)vm_hwm_kb();   /* warm the measuring path (stdio, mallinfo2) before measuring */
    (void)mallinfo2();
    for (int s = 1; s <= 400 && !failure[0]; s++) {
        tg_tape_reset(tape);
        for (int64_t i = 0; i < n; i++)
            x.in[i] = (int32_t)tg_rng_below(&rng, x.V);
        for (int64_t i = 0; i < n; i++)
            x.tg[i] = x.in[(i + 1) % n];
        tg_tensor *loss = lm_loss(tape, &x, true, &rng);
        tg_params_zero_grad(x.ps);
        if (!loss || !isfinite(tg_tensor_get(loss, 0)) || tg_backward(tape, loss) != TG_OK
            || !isfinite(tg_clip_grad_norm(x.ps, 5.0)) || tg_optim_step(opt) != TG_OK) {
            snprintf(failure, sizeof failure, "step %d failed: %s", s, tg_tape_errmsg(tape));
        } else if (s == 2) {
            mallocs2 = tg_tape_mallocs(tape);
            peak2 = tg_tape_bytes_peak(tape);
        } else if (s > 2 && (tg_tape_mallocs(tape) != mallocs2
                             || tg_tape_bytes_peak(tape) != peak2)) {
            snprintf(failure, sizeof failure, "step %d: %lld tape mallocs and a peak of %zu "
                     "bytes, %lld and %zu after step 2", s, (long long)tg_tape_mallocs(tape),
                     tg_tape_bytes_peak(tape), (long long)mallocs2, peak2);
        }
        if (s == 50) {
            hwm50 = vm_hwm_kb();
            heap50 = mallinfo2().uordblks;
        }
    }
    size_t heap = mallinfo2().uordblks;
    long hwm = vm_hwm_kb();
    ck_assert_msg(!failure[0], "%s", failure);
    if (!UNDER_ASAN) {   /* ASan's allocator keeps freed blocks in quarantine */
        ck_assert_msg(heap <= heap50, "heap in use grew from %zu to %zu bytes", heap50, heap);
        if (hwm50 > 0 && hwm > 0)
            ck_assert_msg(hwm - hwm50 <= 64, "VmHWM grew from %ld to %ld kB", hwm50, hwm);
    }
    tg_optim_free(opt);
    tg_tape_free(tape);
    lm_free(&x);
}
END_TEST

Suite *reliability_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("checkpoint", 120),
        TG_TEST(test_header_bits_with_valid_crc),
        TG_TEST(test_truncated_with_consistent_header),
        TG_CASE("save_faults", 0),
        TG_TEST(test_save_file_size_limit),
        TG_TEST(test_save_full_and_readonly_fs),
        TG_CASE("nonfinite", 0),
        TG_LOOP(test_nonfinite_gradient_refused, 15),
        TG_TEST(test_nan_weight_through_charlm),
        TG_CASE("memory", 120),
        TG_LOOP(test_tape_memory_limit_through_charlm, 3),
        TG_TEST(test_training_memory_flat),
    };
    return TG_TEST_SUITE("reliability", rows);
}
