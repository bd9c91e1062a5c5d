/* optim/checkpoint.c: versioned, CRC-checked, atomically written checkpoint files. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "optim/checkpoint.h"
#include "optim/optim_internal.h"
#include "tensor/tensor_internal.h"   /* tg_error_set, tg_error_copy, tg_crc32 */

/*
 * Format versions 1 and 2 (2 only adds the schedule section, and a file without one is
 * written as version 1). Every integer is little-endian and written byte by byte, every
 * float is its IEEE-754 bit pattern as a little-endian u32 (f32) or u64 (f64); there is
 * no padding, no timestamp and no path, so the same state always gives the same bytes.
 *
 *   offset  size  field
 *   0       8     magic "TAPEGRAD"
 *   8       4     u32 format version (1, or 2 with a schedule section)
 *   12      4     u32 dtype of every tensor (0 f32, 1 f64)
 *   16      8     u64 total file size in bytes, CRC included
 *   24      4     u32 number of parameters P
 *   28      4     u32 sections: 0 none, 1 an optimizer section follows (version 1);
 *                 3 an optimizer and a schedule section (version 2)
 *   32      8     u64 metadata size M
 *   40            P descriptors: u32 name length (1..63), name bytes (no NUL),
 *                                u32 ndim (1..4), u64 shape[ndim] (each >= 1)
 *                 P data blocks: numel elements each, in descriptor order
 *                 optimizer (when present):
 *                   u32 kind, u32 flags (byte i: the i-th FLAG field of
 *                       TG_OPTIM_CONFIG_FIELDS, 0 or 1: nesterov, centered),
 *                   f64 each REAL field in that list's order (lr, weight_decay, momentum,
 *                       dampening, beta1, beta2, eps, alpha, lr_decay,
 *                       initial_accumulator_value),
 *                   i64 steps, u32 number of state buffers B,
 *                   B names (u32 length, bytes: "exp_avg", ...), then B buffers of
 *                   (total numel) elements each, laid out like the parameters
 *                 schedule (when present; SCHED_BYTES):
 *                   u32 kind, u32 flags (threshold_abs), then each REAL (f64) and INT
 *                   (i64) of TG_SCHEDULE_FIELDS and of TG_PLATEAU_STATE_FIELDS in order
 *                 M metadata bytes
 *   total-4 4     u32 CRC-32 of every byte before it
 *
 * Loading reads the whole file (at most MAX_FILE bytes), checks magic, version, total
 * size and CRC, then walks every count and length against the bytes that are really
 * there before anything is allocated or modified.
 */

#define MAGIC          "TAPEGRAD"
#define MAGIC_LEN      8
#define FORMAT_VERSION 1u
#define HEADER_BYTES   40
#define NAME_MAX_BYTES 63
#define MAX_META       ((uint64_t)1 << 30)    /* 1 GiB of caller metadata  */
#define MAX_FILE       ((uint64_t)1 << 34)    /* 16 GiB per checkpoint file */
#define SCHEDULE_VERSION 2u               /* the first version with a schedule section */
/* kind, flags word, the config's REALs, steps, number of buffers */
#define OPT_FIXED_BYTES (4 + 4 + 8 * TG_OPTIM_CONFIG_WORDS + 8 + 4)
/* kind, flags word, the schedule's REALs and INTs, the plateau state's */
#define SCHED_BYTES (4 + 4 + 8 * TG_SCHEDULE_WORDS + 8 * TG_PLATEAU_STATE_WORDS)
/* header field "sections": which optional sections follow the parameters */
#define SECTION_OPTIM    1u
#define SECTION_SCHEDULE 2u

/* ---- helpers ------------------------------------------------------------------- */

static size_t esize(tg_dtype dt)
{
    return dt == TG_F64 ? 8 : 4;
}

/* "(2,3,4)" */
static void shape_text(char *buf, size_t size, int ndim, const uint64_t *shape)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < ndim && n < size; d++) {
        int k = snprintf(buf + n, size - n, "%s%llu", d ? "," : "(",
                         (unsigned long long)shape[d]);
        if (k < 0)
            return;
        n += (size_t)k;
    }
    if (n < size)
        snprintf(buf + n, size - n, ")");
}

/* The file's name bytes for a message: control bytes (a crafted file may hold '\n' or
   ESC) become \xNN so the message stays one line. buf >= 4 * len + 1 bytes. */
static const char *name_text(char *buf, const char *name, size_t len)
{
    char *p = buf;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            p += sprintf(p, "\\x%02x", c);
        else
            *p++ = (char)c;
    }
    *p = '\0';
    return buf;
}

/* ---- writing ------------------------------------------------------------------- */

enum { WBUF = 1 << 16 };

typedef struct writer {
    FILE    *f;
    uint32_t crc;     /* of everything written so far        */
    uint64_t count;   /* bytes written so far                */
    int      err;     /* errno of the first failure, or 0     */
    size_t   n;       /* bytes pending in buf                */
    unsigned char buf[WBUF];
} writer;

static void w_flush(writer *w)
{
    if (w->n && !w->err) {
        errno = 0;
        if (fwrite(w->buf, 1, w->n, w->f) != w->n)
            w->err = errno ? errno : EIO;
    }
    w->n = 0;
}

/* Appends n bytes; crc says whether they count towards the checksum. */
static void w_raw(writer *w, const void *data, size_t n, bool crc)
{
    const unsigned char *p = data;
    if (crc)
        w->crc = tg_crc32(w->crc, p, n);
    w->count += n;
    while (n) {
        size_t k = WBUF - w->n < n ? WBUF - w->n : n;
        memcpy(w->buf + w->n, p, k);
        w->n += k;
        p += k;
        n -= k;
        if (w->n == WBUF)
            w_flush(w);
    }
}

static void w_le(writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    w_raw(w, b, (size_t)bytes, true);
}

static void w_f64(writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    w_le(w, u, 8);
}

/* n elements of dtype dt, as little-endian bit patterns (converted in blocks). */
static void w_array(writer *w, const void *data, int64_t n, tg_dtype dt)
{
    unsigned char blk[4096];
    size_t es = esize(dt), per = sizeof blk / es;
    for (int64_t i = 0; i < n;) {
        size_t k = (uint64_t)(n - i) < per ? (size_t)(n - i) : per;
        for (size_t j = 0; j < k; j++) {
            uint64_t u;
            if (dt == TG_F64) {
                memcpy(&u, (const double *)data + i + (int64_t)j, 8);
            } else {
                uint32_t u32;
                memcpy(&u32, (const float *)data + i + (int64_t)j, 4);
                u = u32;
            }
            for (size_t b = 0; b < es; b++)
                blk[j * es + b] = (unsigned char)(u >> (8 * b));
        }
        w_raw(w, blk, k * es, true);
        i += (int64_t)k;
    }
}

static void w_name(writer *w, const char *name)
{
    size_t len = strlen(name);
    w_le(w, len, 4);
    w_raw(w, name, len, true);
}

/* The exact size of the file save will write. */
static uint64_t file_size(tg_params *ps, const tg_optim *opt, size_t meta_size)
{
    int np = tg_params_count(ps);
    uint64_t es = esize(tg_params_dtype(ps)), total = HEADER_BYTES;
    for (int i = 0; i < np; i++) {
        const tg_tensor *t = tg_params_at(ps, i);
        total += 4 + strlen(tg_params_name(ps, i)) + 4 + 8 * (uint64_t)t->ndim;
        total += (uint64_t)t->numel * es;
    }
    if (opt) {
        const tg_optim_config *c = tg_optim_get_config(opt);
        int nb = tg_optim_nbufs(c);
        total += OPT_FIXED_BYTES;
        for (int k = 0; k < nb; k++)
            total += 4 + strlen(tg_optim_buf_name(c, k));
        total += (uint64_t)nb * (uint64_t)tg_optim_numel(opt) * es;
        if (tg_optim_get_schedule(opt))
            total += SCHED_BYTES;
    }
    return total + meta_size + 4;
}

/* A field list (optim_internal.h) of the struct c points to: FLAGs into the word flags
   (nflag counts them), REALs and INTs written in list order. */
#define PUT_FLAG(field, CLASS)                                                          \
    if (TG_FIELD_IS_FLAG_##CLASS)                                                       \
        flags |= (uint32_t)(c->field ? 1 : 0) << (8 * nflag++);
#define PUT_WORD(field, CLASS)                                                          \
    if (TG_FIELD_IS_REAL_##CLASS)                                                       \
        w_f64(w, (double)c->field);                                                     \
    if (TG_FIELD_IS_INT_##CLASS)                                                        \
        w_le(w, (uint64_t)(int64_t)c->field, 8);

/* The optimizer section: kind, flags word, REALs (TG_OPTIM_CONFIG_FIELDS), steps, the
   buffers' names, the buffers. */
static void w_optimizer(writer *w, const tg_optim *opt, tg_dtype dt)
{
    const tg_optim_config *c = tg_optim_get_config(opt);
    int nb = tg_optim_nbufs(c), nflag = 0;
    uint32_t flags = 0;
    TG_OPTIM_CONFIG_FIELDS(PUT_FLAG)
    w_le(w, (uint64_t)c->kind, 4);
    w_le(w, flags, 4);
    TG_OPTIM_CONFIG_FIELDS(PUT_WORD)
    w_le(w, (uint64_t)tg_optim_steps(opt), 8);
    w_le(w, (uint64_t)nb, 4);
    for (int k = 0; k < nb; k++)
        w_name(w, tg_optim_buf_name(c, k));
    for (int k = 0; k < nb; k++)
        w_array(w, tg_optim_buf(opt, k), tg_optim_numel(opt), dt);
}

static void w_plateau(writer *w, const tg_plateau_state *c)
{
    TG_PLATEAU_STATE_FIELDS(PUT_WORD)
}

/* The schedule section: kind, flags word, REALs and INTs (TG_SCHEDULE_FIELDS), then the
   plateau state's (TG_PLATEAU_STATE_FIELDS). */
static void w_schedule(writer *w, const tg_optim *opt)
{
    const tg_schedule *c = tg_optim_get_schedule(opt);
    int nflag = 0;
    uint32_t flags = 0;
    TG_SCHEDULE_FIELDS(PUT_FLAG)
    w_le(w, (uint64_t)c->kind, 4);
    w_le(w, flags, 4);
    TG_SCHEDULE_FIELDS(PUT_WORD)
    w_plateau(w, tg_optim_plateau(opt));
}
#undef PUT_FLAG
#undef PUT_WORD

static void write_all(writer *w, tg_params *ps, const tg_optim *opt, const void *meta,
                      size_t meta_size, uint64_t total)
{
    tg_dtype dt = tg_params_dtype(ps);
    int np = tg_params_count(ps);
    bool sched = opt && tg_optim_get_schedule(opt);
    w_raw(w, MAGIC, MAGIC_LEN, true);
    w_le(w, sched ? SCHEDULE_VERSION : FORMAT_VERSION, 4);
    w_le(w, dt == TG_F64 ? 1 : 0, 4);
    w_le(w, total, 8);
    w_le(w, (uint64_t)np, 4);
    w_le(w, (opt ? SECTION_OPTIM : 0) | (sched ? SECTION_SCHEDULE : 0), 4);
    w_le(w, meta_size, 8);
    for (int i = 0; i < np; i++) {
        const tg_tensor *t = tg_params_at(ps, i);
        w_name(w, tg_params_name(ps, i));
        w_le(w, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++)
            w_le(w, (uint64_t)t->shape[d], 8);
    }
    for (int i = 0; i < np; i++) {
        const tg_tensor *t = tg_params_at(ps, i);
        w_array(w, t->data, t->numel, dt);
    }
    if (opt)
        w_optimizer(w, opt, dt);
    if (opt && tg_optim_get_schedule(opt))
        w_schedule(w, opt);
    if (meta_size)
        w_raw(w, meta, meta_size, true);
    uint32_t crc = w->crc;
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(crc >> (8 * i));
    w_raw(w, b, 4, false);
    w_flush(w);
}

/* fsyncs the directory holding path, so the rename itself is durable (best effort:
   some file systems refuse to fsync a directory, which changes nothing for us). */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (dir)
            strcpy(dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* The checks common to save and load: opt (when given) was made over ps as it is now. */
static tg_status check_optim_matches(const char *path, tg_params *ps, const tg_optim *opt)
{
    if (opt && tg_optim_params(opt) != ps)
        return tg_error_set(TG_ERR_ARG, "%s: the optimizer was made for another "
                            "tg_params", path);
    if (opt && tg_optim_numel(opt) != tg_params_numel(ps))
        return tg_error_set(TG_ERR_ARG, "%s: parameters were added after the "
                            "optimizer was made", path);
    return TG_OK;
}

/* Everything save checks before touching the disk; *total receives the file's size. */
static tg_status save_check(const char *path, tg_params *ps, const tg_optim *opt,
                            const void *meta, size_t meta_size, uint64_t *total)
{
    if (!path || !ps || (!meta && meta_size))
        return tg_error_set(TG_ERR_NULL, "checkpoint save: %s is NULL",
                            !path ? "path" : !ps ? "params" : "meta");
    if ((uint64_t)meta_size > MAX_META)
        return tg_error_set(TG_ERR_ARG, "%s: metadata of %zu bytes is over the "
                            "1 GiB limit", path, meta_size);
    tg_status st = check_optim_matches(path, ps, opt);
    if (st != TG_OK)
        return st;
    char why[160];
    if (opt && tg_optim_config_check(tg_optim_get_config(opt), why, sizeof why) != TG_OK)
        return tg_error_set(TG_ERR_ARG, "%s: the optimizer's config could not be "
                            "loaded back: %s", path, why);
    *total = file_size(ps, opt, meta_size);
    if (*total > MAX_FILE)
        return tg_error_set(TG_ERR_ARG, "%s: a checkpoint of %llu bytes is over "
                            "the 16 GiB limit", path, (unsigned long long)*total);
    return TG_OK;
}

/* Writes the file to tmp, fsyncs it and renames it over path. Returns 0 or the errno of
   the first failure, *what naming the step that failed. */
static int write_and_rename(const char *tmp, const char *path, writer *w, tg_params *ps,
                            const tg_optim *opt, const void *meta, size_t meta_size,
                            uint64_t total, const char **what)
{
    *what = "open";
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return errno;
    memset(w, 0, offsetof(writer, buf));
    w->f = f;
    write_all(w, ps, opt, meta, meta_size, total);
    *what = "write";
    int e = w->err;
    if (!e && w->count != total)
        e = EIO;   /* cannot happen: file_size and write_all describe one format */
    if (!e && fflush(f) != 0)
        e = errno ? errno : EIO;
    if (!e) {
        *what = "fsync";
        if (fsync(fileno(f)) != 0)
            e = errno;
    }
    *what = e ? *what : "close";
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e) {
        *what = "rename";
        if (rename(tmp, path) != 0)
            e = errno;
    }
    if (e)
        remove(tmp);
    return e;
}

static tg_status save(const char *path, tg_params *ps, const tg_optim *opt,
                      const void *meta, size_t meta_size)
{
    uint64_t total = 0;
    tg_status st = save_check(path, ps, opt, meta, meta_size, &total);
    if (st != TG_OK)
        return st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    writer *w = malloc(sizeof *w);
    if (!tmp || !w) {
        free(tmp);
        free(w);
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    const char *what;
    int e = write_and_rename(tmp, path, w, ps, opt, meta, meta_size, total, &what);
    if (e)
        st = tg_error_set(TG_ERR_IO, "%s: cannot %s %s: %s", path, what,
                          strcmp(what, "rename") == 0 ? "the temporary file over it" : tmp,
                          strerror(e));
    else
        sync_dir(path);
    free(w);
    free(tmp);
    return st;
}

tg_status tg_checkpoint_save(const char *path, tg_params *ps, const tg_optim *opt,
                             const void *meta, size_t meta_size, char *err, size_t errsize)
{
    return tg_error_copy(save(path, ps, opt, meta, meta_size), err, errsize);
}

/* ---- reading ------------------------------------------------------------------- */

typedef struct reader {
    const unsigned char *p;
    size_t size, pos;
} reader;

static bool r_has(const reader *r, uint64_t n)
{
    return n <= (uint64_t)(r->size - r->pos);
}

/* Callers check r_has first. */
static uint64_t r_le(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->pos + (size_t)i] << (8 * i);
    r->pos += (size_t)bytes;
    return v;
}

static double r_f64(reader *r)
{
    uint64_t u = r_le(r, 8);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* What parse learnt about a valid file: offsets into its bytes, nothing allocated. */
typedef struct layout {
    tg_dtype        dtype;
    uint32_t        nparams;
    size_t          desc_pos, data_pos;   /* first descriptor, first data block */
    uint64_t        numel;                /* over all parameters                */
    bool            has_opt;
    tg_optim_config cfg;
    int64_t         steps;
    int             nbufs;
    size_t          bufs_pos;             /* first optimizer buffer              */
    bool            has_sched;
    tg_schedule     sched;
    tg_plateau_state plateau;
    size_t          meta_pos;
    uint64_t        meta_size;
} layout;

/* One parameter descriptor, read from r (which parse has validated). */
typedef struct desc {
    const char *name;     /* not NUL-terminated */
    uint32_t    name_len;
    int         ndim;
    uint64_t    shape[TG_MAX_DIMS];
    uint64_t    numel;
} desc;

/* Reads one descriptor, checking every field against the bytes left; elem_limit bounds
   numel (elements that could still fit in the file). NULL on success, else a reason. */
static const char *read_desc(reader *r, desc *d, uint64_t elem_limit)
{
    if (!r_has(r, 4))
        return "parameter table runs past the end";
    d->name_len = (uint32_t)r_le(r, 4);
    if (d->name_len < 1 || d->name_len > NAME_MAX_BYTES)
        return "bad parameter name length";
    if (!r_has(r, (uint64_t)d->name_len + 4))
        return "parameter table runs past the end";
    d->name = (const char *)r->p + r->pos;
    if (memchr(d->name, '\0', d->name_len))
        return "parameter name holds a NUL byte";
    r->pos += d->name_len;
    uint32_t ndim = (uint32_t)r_le(r, 4);
    if (ndim < 1 || ndim > TG_MAX_DIMS)
        return "bad number of dimensions";
    d->ndim = (int)ndim;
    if (!r_has(r, 8 * (uint64_t)ndim))
        return "parameter table runs past the end";
    d->numel = 1;
    for (int k = 0; k < d->ndim; k++) {
        d->shape[k] = r_le(r, 8);
        if (d->shape[k] < 1)
            return "a dimension is 0";
        if (d->shape[k] > elem_limit / d->numel)
            return "a parameter is larger than the file";
        d->numel *= d->shape[k];
    }
    return NULL;
}

/* Reads a u32-length-prefixed name and compares it with want. */
static bool read_name_is(reader *r, const char *want)
{
    size_t len = strlen(want);
    if (!r_has(r, 4))
        return false;
    if (r_le(r, 4) != len || !r_has(r, len))
        return false;
    bool same = memcmp(r->p + r->pos, want, len) == 0;
    r->pos += len;
    return same;
}

/* Magic, version, total size and CRC, then the header's counts. On TG_OK r is positioned
   at the first parameter descriptor and its size excludes the CRC. */
static tg_status parse_header(const char *path, reader *r, layout *L)
{
    const unsigned char *buf = r->p;
    size_t size = r->size;
    size_t m = size < MAGIC_LEN ? size : MAGIC_LEN;
    if (memcmp(buf, MAGIC, m) != 0)
        return tg_error_set(TG_ERR_FORMAT, "%s: not a tapegrad checkpoint (bad magic)", path);
    if (size < 12)
        return tg_error_set(TG_ERR_FORMAT, "%s: truncated at byte %zu (a checkpoint is at "
                            "least %d bytes)", path, size, HEADER_BYTES + 4);
    r->pos = MAGIC_LEN;
    uint32_t version = (uint32_t)r_le(r, 4);
    if (version < FORMAT_VERSION || version > SCHEDULE_VERSION)
        return tg_error_set(TG_ERR_FORMAT, "%s: format version %u is not supported (this "
                            "build reads versions %u to %u)", path, version, FORMAT_VERSION,
                            SCHEDULE_VERSION);
    if (size < HEADER_BYTES + 4)
        return tg_error_set(TG_ERR_FORMAT, "%s: truncated at byte %zu (a checkpoint is at "
                            "least %d bytes)", path, size, HEADER_BYTES + 4);
    uint32_t dt = (uint32_t)r_le(r, 4);
    uint64_t total = r_le(r, 8);
    if (size < total)
        return tg_error_set(TG_ERR_FORMAT, "%s: truncated at byte %zu (expected %llu "
                            "bytes)", path, size, (unsigned long long)total);
    if (size > total)
        return tg_error_set(TG_ERR_FORMAT, "%s: %llu unexpected bytes after the end (file "
                            "is %zu bytes, expected %llu)", path,
                            (unsigned long long)(size - total), size,
                            (unsigned long long)total);
    uint32_t stored = 0;
    for (int i = 0; i < 4; i++)
        stored |= (uint32_t)buf[size - 4 + (size_t)i] << (8 * i);
    uint32_t crc = tg_crc32(0, buf, size - 4);
    if (crc != stored)
        return tg_error_set(TG_ERR_FORMAT, "%s: checksum mismatch (stored 0x%08x, computed "
                            "0x%08x): the file is corrupt", path, stored, crc);

    /* From here on the bytes are what some writer wrote; still trust nothing. */
    r->size = size - 4;   /* the CRC is not content */
    if (dt > 1)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: unknown dtype code %u", path, dt);
    L->dtype = dt ? TG_F64 : TG_F32;
    L->nparams = (uint32_t)r_le(r, 4);
    uint32_t sections = (uint32_t)r_le(r, 4);
    L->meta_size = r_le(r, 8);
    /* version 1: no section or the optimizer's; version 2: the optimizer's and a schedule */
    bool known = version == FORMAT_VERSION ? sections <= SECTION_OPTIM
                                           : sections == (SECTION_OPTIM | SECTION_SCHEDULE);
    if (!known)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: bad optimizer flag %u for version "
                            "%u", path, sections, version);
    L->has_opt = sections & SECTION_OPTIM;
    L->has_sched = sections & SECTION_SCHEDULE;
    if (L->meta_size > MAX_META || !r_has(r, L->meta_size))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: metadata size %llu does not fit",
                            path, (unsigned long long)L->meta_size);
    return TG_OK;
}

/* The parameter descriptors and data blocks. */
static tg_status parse_params(const char *path, reader *r, layout *L)
{
    size_t es = esize(L->dtype);
    /* the smallest descriptor is 4 + 1 + 4 + 8 bytes, plus one element of data */
    if ((uint64_t)L->nparams > (r->size - r->pos) / (17 + es))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: %u parameters cannot fit in the "
                            "file", path, L->nparams);
    L->desc_pos = r->pos;
    uint64_t elems_left = (r->size - r->pos) / es;
    for (uint32_t i = 0; i < L->nparams; i++) {
        desc d;
        const char *why = read_desc(r, &d, elems_left);
        if (why)
            return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: parameter %u: %s", path, i,
                                why);
        elems_left -= d.numel;
        L->numel += d.numel;
    }
    L->data_pos = r->pos;
    if (!r_has(r, L->numel * es))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: parameter data runs past the "
                            "end", path);
    r->pos += (size_t)(L->numel * es);
    return TG_OK;
}

/* A field list (optim_internal.h) into the struct c points to: FLAGs from the word flags
   (nflag counts them), REALs and INTs read in list order. The caller checks the bytes
   are there and validates the values. */
#define GET_FLAG(field, CLASS)                                                          \
    if (TG_FIELD_IS_FLAG_##CLASS)                                                       \
        c->field = (flags >> (8 * nflag++)) & 1u;
#define GET_WORD(field, CLASS)                                                          \
    if (TG_FIELD_IS_REAL_##CLASS)                                                       \
        c->field = r_f64(r);                                                            \
    if (TG_FIELD_IS_INT_##CLASS)                                                        \
        c->field = (int64_t)r_le(r, 8);

/* A flags word holding nflags FLAGs: each byte 0 or 1, the bytes past them 0. */
static bool flags_valid(uint32_t flags, int nflags)
{
    uint32_t allowed = 0;
    for (int i = 0; i < nflags; i++)
        allowed |= 1u << (8 * i);
    return (flags & ~allowed) == 0;
}

/* The optimizer's kind, flags word and REALs (TG_OPTIM_CONFIG_FIELDS) into L->cfg; the
   caller has checked that OPT_FIXED_BYTES are there. */
static tg_status parse_config(const char *path, reader *r, layout *L)
{
    tg_optim_config *c = &L->cfg;
    uint32_t kind = (uint32_t)r_le(r, 4), flags = (uint32_t)r_le(r, 4);
    int nflag = 0;
    if (kind >= TG_OPTIM_KIND_COUNT || !flags_valid(flags, TG_OPTIM_CONFIG_FLAGS))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: bad optimizer kind or flags", path);
    TG_OPTIM_CONFIG_FIELDS(GET_FLAG)
    TG_OPTIM_CONFIG_FIELDS(GET_WORD)
    c->kind = (tg_optim_kind)kind;
    char why[160];
    if (tg_optim_config_check(c, why, sizeof why) != TG_OK)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt optimizer config: %s", path, why);
    return TG_OK;
}

static void r_plateau(reader *r, tg_plateau_state *c)
{
    TG_PLATEAU_STATE_FIELDS(GET_WORD)
}

/* The schedule section into L->sched and L->plateau. */
static tg_status parse_schedule(const char *path, reader *r, layout *L)
{
    if (!r_has(r, SCHED_BYTES))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: schedule section runs past the "
                            "end", path);
    tg_schedule *c = &L->sched;
    uint32_t kind = (uint32_t)r_le(r, 4), flags = (uint32_t)r_le(r, 4);
    int nflag = 0;
    if (kind >= TG_SCHED_KIND_COUNT || !flags_valid(flags, TG_SCHEDULE_FLAGS))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: bad schedule kind or flags", path);
    TG_SCHEDULE_FIELDS(GET_FLAG)
    TG_SCHEDULE_FIELDS(GET_WORD)
    c->kind = (tg_schedule_kind)kind;
    r_plateau(r, &L->plateau);
    if (tg_schedule_check(c) != TG_OK) {
        char why[160];
        snprintf(why, sizeof why, "%s", tg_last_error());
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt schedule: %s", path, why);
    }
    const tg_plateau_state *p = &L->plateau;
    if (isnan(p->best) || p->bad_calls < 0 || p->cooldown_left < 0
        || p->cooldown_left > c->cooldown)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: bad plateau state", path);
    return TG_OK;
}
#undef GET_FLAG
#undef GET_WORD

/* The optimizer section: config, step count, buffer names, buffers. */
static tg_status parse_optimizer(const char *path, reader *r, layout *L)
{
    size_t es = esize(L->dtype);
    if (!r_has(r, OPT_FIXED_BYTES))
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: optimizer section runs past the "
                            "end", path);
    tg_status st = parse_config(path, r, L);
    if (st != TG_OK)
        return st;
    const tg_optim_config *c = &L->cfg;
    uint64_t steps = r_le(r, 8);
    uint32_t nbufs = (uint32_t)r_le(r, 4);
    if (steps > (uint64_t)INT64_MAX)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: bad step count", path);
    L->steps = (int64_t)steps;
    L->nbufs = tg_optim_nbufs(c);
    if (nbufs != (uint32_t)L->nbufs)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: %u optimizer buffers where %s "
                            "needs %d", path, nbufs, tg_optim_kind_name(c->kind), L->nbufs);
    for (int k = 0; k < L->nbufs; k++)
        if (!read_name_is(r, tg_optim_buf_name(c, k)))
            return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: optimizer buffer %d is not "
                                "'%s'", path, k, tg_optim_buf_name(c, k));
    L->bufs_pos = r->pos;
    if (L->numel && (uint64_t)L->nbufs > (r->size - r->pos) / es / L->numel)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: optimizer state runs past the end",
                            path);
    r->pos += (size_t)((uint64_t)L->nbufs * L->numel * es);
    return TG_OK;
}

/* Validates everything about a file's bytes that does not depend on the model. */
static tg_status parse(const char *path, const unsigned char *buf, size_t size, layout *L)
{
    reader r = { buf, size, 0 };
    memset(L, 0, sizeof *L);
    tg_status st = parse_header(path, &r, L);
    if (st == TG_OK)
        st = parse_params(path, &r, L);
    if (st == TG_OK && L->has_opt)
        st = parse_optimizer(path, &r, L);
    if (st == TG_OK && L->has_sched)
        st = parse_schedule(path, &r, L);
    if (st != TG_OK)
        return st;
    L->meta_pos = r.pos;
    if ((uint64_t)(r.size - r.pos) != L->meta_size)
        return tg_error_set(TG_ERR_FORMAT, "%s: corrupt: %zu bytes where %llu bytes of "
                            "metadata should be", path, r.size - r.pos,
                            (unsigned long long)L->meta_size);
    return TG_OK;
}

/* Reads the whole file into *buf (malloc'ed, caller frees). */
static tg_status read_file(const char *path, unsigned char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_error_set(TG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return tg_error_set(TG_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return tg_error_set(TG_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > MAX_FILE
        || (uint64_t)sb.st_size > SIZE_MAX) {
        fclose(f);
        return tg_error_set(TG_ERR_FORMAT, "%s: %lld bytes is over the 16 GiB a "
                            "checkpoint may have", path, (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    errno = 0;
    size_t got = fread(b, 1, n, f);
    int e = errno;
    bool more = got == n && fgetc(f) != EOF;
    fclose(f);
    if (got != n || more) {
        free(b);
        if (got != n && e)
            return tg_error_set(TG_ERR_IO, "%s: cannot read: %s", path, strerror(e));
        return tg_error_set(TG_ERR_IO, "%s: the file changed while being read", path);
    }
    *buf = b;
    *size = n;
    return TG_OK;
}

/* Decodes n little-endian elements of dt from src into dst. */
static void decode_array(void *dst, const unsigned char *src, uint64_t n, tg_dtype dt)
{
    if (dt == TG_F64) {
        double *d = dst;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t u = 0;
            for (int b = 0; b < 8; b++)
                u |= (uint64_t)src[8 * i + (uint64_t)b] << (8 * b);
            memcpy(&d[i], &u, 8);
        }
    } else {
        float *d = dst;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t u = 0;
            for (int b = 0; b < 4; b++)
                u |= (uint32_t)src[4 * i + (uint64_t)b] << (8 * b);
            memcpy(&d[i], &u, 4);
        }
    }
}

static tg_status read_meta(const char *path, void **meta, size_t *meta_size)
{
    if (!path || !meta || !meta_size)
        return tg_error_set(TG_ERR_NULL, "checkpoint read_meta: %s is NULL",
                            !path ? "path" : !meta ? "meta" : "meta_size");
    *meta = NULL;
    *meta_size = 0;
    unsigned char *buf;
    size_t size;
    layout L;
    tg_status st = read_file(path, &buf, &size);
    if (st == TG_OK)
        st = parse(path, buf, size, &L);
    if (st == TG_OK && L.meta_size) {
        void *m = malloc((size_t)L.meta_size);
        if (!m) {
            st = tg_error_set(TG_ERR_NOMEM, "%s: out of memory for %llu bytes of "
                              "metadata", path, (unsigned long long)L.meta_size);
        } else {
            memcpy(m, buf + L.meta_pos, (size_t)L.meta_size);
            *meta = m;
            *meta_size = (size_t)L.meta_size;
        }
    }
    free(buf);
    return st;
}

tg_status tg_checkpoint_read_meta(const char *path, void **meta, size_t *meta_size,
                                  char *err, size_t errsize)
{
    return tg_error_copy(read_meta(path, meta, meta_size), err, errsize);
}

/* Checks the file's parameter table against ps: same count, names, dtypes, shapes. */
static tg_status match_params(const char *path, const unsigned char *buf, size_t size,
                              const layout *L, tg_params *ps)
{
    if (L->dtype != tg_params_dtype(ps))
        return tg_error_set(TG_ERR_DTYPE, "%s: holds %s parameters, the model has %s",
                            path, L->dtype == TG_F64 ? "f64" : "f32",
                            tg_params_dtype(ps) == TG_F64 ? "f64" : "f32");
    int np = tg_params_count(ps);
    if ((uint64_t)np != L->nparams)
        return tg_error_set(TG_ERR_SHAPE, "%s: holds %u parameters, the model has %d",
                            path, L->nparams, np);
    reader r = { buf, size - 4, L->desc_pos };
    for (int i = 0; i < np; i++) {
        desc d;
        read_desc(&r, &d, UINT64_MAX);   /* parse validated it */
        const char *name = tg_params_name(ps, i);
        const tg_tensor *t = tg_params_at(ps, i);
        bool same = strlen(name) == d.name_len && memcmp(name, d.name, d.name_len) == 0
                    && t->ndim == d.ndim;
        for (int k = 0; same && k < d.ndim; k++)
            same = (uint64_t)t->shape[k] == d.shape[k];
        if (!same) {
            char fs[96], ms[96], fname[4 * NAME_MAX_BYTES + 1];
            uint64_t mshape[TG_MAX_DIMS];
            for (int k = 0; k < t->ndim; k++)
                mshape[k] = (uint64_t)t->shape[k];
            shape_text(fs, sizeof fs, d.ndim, d.shape);
            shape_text(ms, sizeof ms, t->ndim, mshape);
            return tg_error_set(TG_ERR_SHAPE, "%s: parameter %d is '%s' %s in the file but "
                                "'%s' %s in the model", path, i,
                                name_text(fname, d.name, d.name_len), fs, name, ms);
        }
    }
    return TG_OK;
}

/* Checks that the file (parsed into L) fits ps and opt, and allocates opt's new state
   block into *block. */
static tg_status load_check(const char *path, const unsigned char *buf, size_t size,
                            const layout *L, tg_params *ps, const tg_optim *opt, void **block)
{
    *block = NULL;
    tg_status st = match_params(path, buf, size, L, ps);
    if (st != TG_OK || !opt)
        return st;
    if (!L->has_opt)
        return tg_error_set(TG_ERR_ARG, "%s: holds no optimizer state (load it with opt "
                            "NULL)", path);
    if (L->cfg.kind != tg_optim_get_config(opt)->kind)
        return tg_error_set(TG_ERR_ARG, "%s: holds %s state, the optimizer is %s", path,
                            tg_optim_kind_name(L->cfg.kind),
                            tg_optim_kind_name(tg_optim_get_config(opt)->kind));
    size_t bytes;
    *block = tg_optim_alloc_state(opt, &L->cfg, &bytes);
    if (bytes && !*block)
        return tg_error_set(TG_ERR_NOMEM, "%s: out of memory for %zu bytes of optimizer "
                            "state", path, bytes);
    return TG_OK;
}

static tg_status load(const char *path, tg_params *ps, tg_optim *opt)
{
    if (!path || !ps)
        return tg_error_set(TG_ERR_NULL, "checkpoint load: %s is NULL",
                            !path ? "path" : "params");
    tg_status st = check_optim_matches(path, ps, opt);
    if (st != TG_OK)
        return st;
    unsigned char *buf;
    size_t size;
    layout L;
    void *block = NULL;
    st = read_file(path, &buf, &size);
    if (st != TG_OK)
        return st;
    st = parse(path, buf, size, &L);
    if (st == TG_OK)
        st = load_check(path, buf, size, &L, ps, opt, &block);
    if (st != TG_OK) {
        free(buf);
        return st;
    }

    /* Everything is valid: from here on nothing can fail. */
    tg_dtype dt = L.dtype;
    size_t es = esize(dt);
    const unsigned char *src = buf + L.data_pos;
    for (int i = 0; i < tg_params_count(ps); i++) {
        tg_tensor *t = tg_params_at(ps, i);
        decode_array(t->data, src, (uint64_t)t->numel, dt);
        src += (size_t)t->numel * es;
    }
    if (opt) {
        const unsigned char *bsrc = buf + L.bufs_pos;
        for (int k = 0; k < L.nbufs; k++)
            decode_array((char *)block + (size_t)k * (size_t)L.numel * es,
                         bsrc + (size_t)k * (size_t)L.numel * es, L.numel, dt);
        tg_optim_install(opt, &L.cfg, L.steps, block);
        if (L.has_sched)
            tg_optim_install_schedule(opt, &L.sched, &L.plateau);
    }
    free(buf);
    return TG_OK;
}

tg_status tg_checkpoint_load(const char *path, tg_params *ps, tg_optim *opt,
                             char *err, size_t errsize)
{
    return tg_error_copy(load(path, ps, opt), err, errsize);
}
