/* optim/checkpoint.c: versioned, CRC-checked, atomically written checkpoint files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "optim/checkpoint.h"
#include "optim/optim_internal.h"

/*
 * Format version 1. Every integer is little-endian and written byte by byte, every float
 * is its IEEE-754 bit pattern as a little-endian u32 (f32) or u64 (f64); there is no
 * padding, no timestamp and no path, so the same state always gives the same bytes.
 *
 *   offset  size  field
 *   0       8     magic "TAPEGRAD"
 *   8       4     u32 format version (1)
 *   12      4     u32 dtype of every tensor (0 f32, 1 f64)
 *   16      8     u64 total file size in bytes, CRC included
 *   24      4     u32 number of parameters P
 *   28      4     u32 1 when an optimizer section follows, else 0
 *   32      8     u64 metadata size M
 *   40            P descriptors: u32 name length (1..63), name bytes (no NUL),
 *                                u32 ndim (1..4), u64 shape[ndim] (each >= 1)
 *                 P data blocks: numel elements each, in descriptor order
 *                 optimizer (when present):
 *                   u32 kind, u8 nesterov, u8 centered, u16 zero,
 *                   f64 lr, weight_decay, momentum, dampening, beta1, beta2, eps, alpha,
 *                       lr_decay, initial_accumulator_value,
 *                   i64 steps, u32 number of state buffers B,
 *                   B names (u32 length, bytes: "exp_avg", ...), then B buffers of
 *                   (total numel) elements each, laid out like the parameters
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
#define OPT_FIXED_BYTES (4 + 1 + 1 + 2 + 10 * 8 + 8 + 4)

/* ---- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) --------------------- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t tg_crc32(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- messages ------------------------------------------------------------------ */

static tg_status fail(tg_status st, char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return st;
}

static void clear_err(char *err, size_t errsize)
{
    if (err && errsize)
        err[0] = '\0';
}

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
        int nb = tg_optim__nbufs(c);
        total += OPT_FIXED_BYTES;
        for (int k = 0; k < nb; k++)
            total += 4 + strlen(tg_optim__buf_name(c, k));
        total += (uint64_t)nb * (uint64_t)tg_optim__numel(opt) * es;
    }
    return total + meta_size + 4;
}

static void write_all(writer *w, tg_params *ps, const tg_optim *opt, const void *meta,
                      size_t meta_size, uint64_t total)
{
    tg_dtype dt = tg_params_dtype(ps);
    int np = tg_params_count(ps);
    w_raw(w, MAGIC, MAGIC_LEN, true);
    w_le(w, FORMAT_VERSION, 4);
    w_le(w, dt == TG_F64 ? 1 : 0, 4);
    w_le(w, total, 8);
    w_le(w, (uint64_t)np, 4);
    w_le(w, opt ? 1 : 0, 4);
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
    if (opt) {
        const tg_optim_config *c = tg_optim_get_config(opt);
        int nb = tg_optim__nbufs(c);
        w_le(w, (uint64_t)c->kind, 4);
        w_le(w, c->nesterov ? 1 : 0, 1);
        w_le(w, c->centered ? 1 : 0, 1);
        w_le(w, 0, 2);
        w_f64(w, c->lr);
        w_f64(w, c->weight_decay);
        w_f64(w, c->momentum);
        w_f64(w, c->dampening);
        w_f64(w, c->beta1);
        w_f64(w, c->beta2);
        w_f64(w, c->eps);
        w_f64(w, c->alpha);
        w_f64(w, c->lr_decay);
        w_f64(w, c->initial_accumulator_value);
        w_le(w, (uint64_t)tg_optim_steps(opt), 8);
        w_le(w, (uint64_t)nb, 4);
        for (int k = 0; k < nb; k++)
            w_name(w, tg_optim__buf_name(c, k));
        for (int k = 0; k < nb; k++)
            w_array(w, tg_optim__buf(opt, k), tg_optim__numel(opt), dt);
    }
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

tg_status tg_checkpoint_save(const char *path, tg_params *ps, const tg_optim *opt,
                             const void *meta, size_t meta_size, char *err, size_t errsize)
{
    if (!path || !ps || (!meta && meta_size))
        return fail(TG_ERR_NULL, err, errsize, "checkpoint save: %s is NULL",
                    !path ? "path" : !ps ? "params" : "meta");
    if ((uint64_t)meta_size > MAX_META)
        return fail(TG_ERR_ARG, err, errsize, "%s: metadata of %zu bytes is over the "
                    "1 GiB limit", path, meta_size);
    if (opt && tg_optim__params(opt) != ps)
        return fail(TG_ERR_ARG, err, errsize, "%s: the optimizer was made for another "
                    "tg_params", path);
    if (opt && tg_optim__numel(opt) != tg_params_numel(ps))
        return fail(TG_ERR_ARG, err, errsize, "%s: parameters were added after the "
                    "optimizer was made", path);
    char why[160];
    if (opt && tg_optim_config_check(tg_optim_get_config(opt), why, sizeof why) != TG_OK)
        return fail(TG_ERR_ARG, err, errsize, "%s: the optimizer's config could not be "
                    "loaded back: %s", path, why);
    uint64_t total = file_size(ps, opt, meta_size);
    if (total > MAX_FILE)
        return fail(TG_ERR_ARG, err, errsize, "%s: a checkpoint of %llu bytes is over "
                    "the 16 GiB limit", path, (unsigned long long)total);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    writer *w = malloc(sizeof *w);
    if (!tmp || !w) {
        free(tmp);
        free(w);
        return fail(TG_ERR_NOMEM, err, errsize, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    tg_status st = TG_OK;
    const char *what = "open";
    int e = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        e = errno;
    } else {
        memset(w, 0, offsetof(writer, buf));
        w->f = f;
        write_all(w, ps, opt, meta, meta_size, total);
        what = "write";
        e = w->err;
        if (!e && w->count != total)
            e = EIO;   /* cannot happen: file_size and write_all describe one format */
        if (!e && fflush(f) != 0)
            e = errno ? errno : EIO;
        if (!e) {
            what = "fsync";
            if (fsync(fileno(f)) != 0)
                e = errno;
        }
        what = e ? what : "close";
        if (fclose(f) != 0 && !e)
            e = errno ? errno : EIO;
        if (!e) {
            what = "rename";
            if (rename(tmp, path) != 0)
                e = errno;
        }
    }
    if (e) {
        if (f)
            remove(tmp);
        st = fail(TG_ERR_IO, err, errsize, "%s: cannot %s %s: %s", path, what,
                  strcmp(what, "rename") == 0 ? "the temporary file over it" : tmp,
                  strerror(e));
    } else {
        sync_dir(path);
        clear_err(err, errsize);
    }
    free(w);
    free(tmp);
    return st;
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

/* Validates everything about a file's bytes that does not depend on the model. */
static tg_status parse(const char *path, const unsigned char *buf, size_t size, layout *L,
                       char *err, size_t errsize)
{
    reader r = { buf, size, 0 };
    memset(L, 0, sizeof *L);
    size_t m = size < MAGIC_LEN ? size : MAGIC_LEN;
    if (memcmp(buf, MAGIC, m) != 0)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: not a tapegrad checkpoint (bad magic)",
                    path);
    if (size < 12)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: truncated at byte %zu (a checkpoint "
                    "is at least %d bytes)", path, size, HEADER_BYTES + 4);
    r.pos = MAGIC_LEN;
    uint32_t version = (uint32_t)r_le(&r, 4);
    if (version != FORMAT_VERSION)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: format version %u is not supported "
                    "(this build reads version %u)", path, version, FORMAT_VERSION);
    if (size < HEADER_BYTES + 4)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: truncated at byte %zu (a checkpoint "
                    "is at least %d bytes)", path, size, HEADER_BYTES + 4);
    uint32_t dt = (uint32_t)r_le(&r, 4);
    uint64_t total = r_le(&r, 8);
    if (size < total)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: truncated at byte %zu (expected "
                    "%llu bytes)", path, size, (unsigned long long)total);
    if (size > total)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: %llu unexpected bytes after the end "
                    "(file is %zu bytes, expected %llu)", path,
                    (unsigned long long)(size - total), size, (unsigned long long)total);
    uint32_t stored = 0;
    for (int i = 0; i < 4; i++)
        stored |= (uint32_t)buf[size - 4 + (size_t)i] << (8 * i);
    uint32_t crc = tg_crc32(0, buf, size - 4);
    if (crc != stored)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: checksum mismatch (stored 0x%08x, "
                    "computed 0x%08x): the file is corrupt", path, stored, crc);

    /* From here on the bytes are what some writer wrote; still trust nothing. */
    r.size = size - 4;   /* the CRC is not content */
    if (dt > 1)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: unknown dtype code %u",
                    path, dt);
    L->dtype = dt ? TG_F64 : TG_F32;
    size_t es = esize(L->dtype);
    L->nparams = (uint32_t)r_le(&r, 4);
    uint32_t has_opt = (uint32_t)r_le(&r, 4);
    L->meta_size = r_le(&r, 8);
    if (has_opt > 1)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: bad optimizer flag %u",
                    path, has_opt);
    L->has_opt = has_opt;
    if (L->meta_size > MAX_META || !r_has(&r, L->meta_size))
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: metadata size %llu does not "
                    "fit", path, (unsigned long long)L->meta_size);
    /* the smallest descriptor is 4 + 1 + 4 + 8 bytes, plus one element of data */
    if ((uint64_t)L->nparams > (r.size - r.pos) / (17 + es))
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: %u parameters cannot fit "
                    "in the file", path, L->nparams);

    L->desc_pos = r.pos;
    uint64_t elems_left = (r.size - r.pos) / es;
    for (uint32_t i = 0; i < L->nparams; i++) {
        desc d;
        const char *why = read_desc(&r, &d, elems_left);
        if (why)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: parameter %u: %s",
                        path, i, why);
        elems_left -= d.numel;
        L->numel += d.numel;
    }
    L->data_pos = r.pos;
    if (!r_has(&r, L->numel * es))
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: parameter data runs past "
                    "the end", path);
    r.pos += (size_t)(L->numel * es);

    if (L->has_opt) {
        if (!r_has(&r, OPT_FIXED_BYTES))
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: optimizer section runs "
                        "past the end", path);
        tg_optim_config *c = &L->cfg;
        uint32_t kind = (uint32_t)r_le(&r, 4);
        uint32_t nesterov = (uint32_t)r_le(&r, 1), centered = (uint32_t)r_le(&r, 1);
        uint32_t zero = (uint32_t)r_le(&r, 2);
        if (kind > TG_ADAGRAD || nesterov > 1 || centered > 1 || zero != 0)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: bad optimizer kind or "
                        "flags", path);
        c->kind = (tg_optim_kind)kind;
        c->nesterov = nesterov;
        c->centered = centered;
        c->lr = r_f64(&r);
        c->weight_decay = r_f64(&r);
        c->momentum = r_f64(&r);
        c->dampening = r_f64(&r);
        c->beta1 = r_f64(&r);
        c->beta2 = r_f64(&r);
        c->eps = r_f64(&r);
        c->alpha = r_f64(&r);
        c->lr_decay = r_f64(&r);
        c->initial_accumulator_value = r_f64(&r);
        uint64_t steps = r_le(&r, 8);
        uint32_t nbufs = (uint32_t)r_le(&r, 4);
        char why[160];
        if (tg_optim_config_check(c, why, sizeof why) != TG_OK)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt optimizer config: %s",
                        path, why);
        if (steps > (uint64_t)INT64_MAX)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: bad step count", path);
        L->steps = (int64_t)steps;
        L->nbufs = tg_optim__nbufs(c);
        if (nbufs != (uint32_t)L->nbufs)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: %u optimizer buffers "
                        "where %s needs %d", path, nbufs, tg_optim_kind_name(c->kind),
                        L->nbufs);
        for (int k = 0; k < L->nbufs; k++)
            if (!read_name_is(&r, tg_optim__buf_name(c, k)))
                return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: optimizer buffer %d "
                            "is not '%s'", path, k, tg_optim__buf_name(c, k));
        L->bufs_pos = r.pos;
        if (L->numel && (uint64_t)L->nbufs > (r.size - r.pos) / es / L->numel)
            return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: optimizer state runs "
                        "past the end", path);
        r.pos += (size_t)((uint64_t)L->nbufs * L->numel * es);
    }
    L->meta_pos = r.pos;
    if ((uint64_t)(r.size - r.pos) != L->meta_size)
        return fail(TG_ERR_FORMAT, err, errsize, "%s: corrupt: %zu bytes where %llu bytes "
                    "of metadata should be", path, r.size - r.pos,
                    (unsigned long long)L->meta_size);
    return TG_OK;
}

/* Reads the whole file into *buf (malloc'ed, caller frees). */
static tg_status read_file(const char *path, unsigned char **buf, size_t *size, char *err,
                           size_t errsize)
{
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(TG_ERR_IO, err, errsize, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return fail(TG_ERR_IO, err, errsize, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return fail(TG_ERR_IO, err, errsize, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > MAX_FILE
        || (uint64_t)sb.st_size > SIZE_MAX) {
        fclose(f);
        return fail(TG_ERR_FORMAT, err, errsize, "%s: %lld bytes is over the 16 GiB a "
                    "checkpoint may have", path, (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return fail(TG_ERR_NOMEM, err, errsize, "%s: out of memory reading %zu bytes",
                    path, n);
    }
    errno = 0;
    size_t got = fread(b, 1, n, f);
    int e = errno;
    bool more = got == n && fgetc(f) != EOF;
    fclose(f);
    if (got != n || more) {
        free(b);
        if (got != n && e)
            return fail(TG_ERR_IO, err, errsize, "%s: cannot read: %s", path, strerror(e));
        return fail(TG_ERR_IO, err, errsize, "%s: the file changed while being read", path);
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

tg_status tg_checkpoint_read_meta(const char *path, void **meta, size_t *meta_size,
                                  char *err, size_t errsize)
{
    if (!path || !meta || !meta_size)
        return fail(TG_ERR_NULL, err, errsize, "checkpoint read_meta: %s is NULL",
                    !path ? "path" : !meta ? "meta" : "meta_size");
    *meta = NULL;
    *meta_size = 0;
    unsigned char *buf;
    size_t size;
    layout L;
    tg_status st = read_file(path, &buf, &size, err, errsize);
    if (st == TG_OK)
        st = parse(path, buf, size, &L, err, errsize);
    if (st == TG_OK && L.meta_size) {
        void *m = malloc((size_t)L.meta_size);
        if (!m) {
            st = fail(TG_ERR_NOMEM, err, errsize, "%s: out of memory for %llu bytes of "
                      "metadata", path, (unsigned long long)L.meta_size);
        } else {
            memcpy(m, buf + L.meta_pos, (size_t)L.meta_size);
            *meta = m;
            *meta_size = (size_t)L.meta_size;
        }
    }
    if (st == TG_OK)
        clear_err(err, errsize);
    free(buf);
    return st;
}

/* Checks the file's parameter table against ps: same count, names, dtypes, shapes. */
static tg_status match_params(const char *path, const unsigned char *buf, size_t size,
                              const layout *L, tg_params *ps, char *err, size_t errsize)
{
    if (L->dtype != tg_params_dtype(ps))
        return fail(TG_ERR_DTYPE, err, errsize, "%s: holds %s parameters, the model has %s",
                    path, L->dtype == TG_F64 ? "f64" : "f32",
                    tg_params_dtype(ps) == TG_F64 ? "f64" : "f32");
    int np = tg_params_count(ps);
    if ((uint64_t)np != L->nparams)
        return fail(TG_ERR_SHAPE, err, errsize, "%s: holds %u parameters, the model has %d",
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
            return fail(TG_ERR_SHAPE, err, errsize, "%s: parameter %d is '%s' %s in the "
                        "file but '%s' %s in the model", path, i,
                        name_text(fname, d.name, d.name_len),
                        fs, name, ms);
        }
    }
    return TG_OK;
}

tg_status tg_checkpoint_load(const char *path, tg_params *ps, tg_optim *opt,
                             char *err, size_t errsize)
{
    if (!path || !ps)
        return fail(TG_ERR_NULL, err, errsize, "checkpoint load: %s is NULL",
                    !path ? "path" : "params");
    if (opt && tg_optim__params(opt) != ps)
        return fail(TG_ERR_ARG, err, errsize, "%s: the optimizer was made for another "
                    "tg_params", path);
    if (opt && tg_optim__numel(opt) != tg_params_numel(ps))
        return fail(TG_ERR_ARG, err, errsize, "%s: parameters were added after the "
                    "optimizer was made", path);
    unsigned char *buf;
    size_t size;
    layout L;
    tg_status st = read_file(path, &buf, &size, err, errsize);
    if (st != TG_OK)
        return st;
    st = parse(path, buf, size, &L, err, errsize);
    if (st == TG_OK)
        st = match_params(path, buf, size, &L, ps, err, errsize);
    if (st == TG_OK && opt && !L.has_opt)
        st = fail(TG_ERR_ARG, err, errsize, "%s: holds no optimizer state (load it with "
                  "opt NULL)", path);
    if (st == TG_OK && opt && L.cfg.kind != tg_optim_get_config(opt)->kind)
        st = fail(TG_ERR_ARG, err, errsize, "%s: holds %s state, the optimizer is %s",
                  path, tg_optim_kind_name(L.cfg.kind),
                  tg_optim_kind_name(tg_optim_get_config(opt)->kind));
    void *block = NULL;
    if (st == TG_OK && opt) {
        size_t bytes;
        block = tg_optim__alloc_state(opt, &L.cfg, &bytes);
        if (bytes && !block)
            st = fail(TG_ERR_NOMEM, err, errsize, "%s: out of memory for %zu bytes of "
                      "optimizer state", path, bytes);
    }
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
        tg_optim__install(opt, &L.cfg, L.steps, block);
    }
    free(buf);
    clear_err(err, errsize);
    return TG_OK;
}
