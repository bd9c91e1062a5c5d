/* fuzz/util.c: in-memory files and aborting checks for the fuzz targets (see fuzz.h). */
#define _GNU_SOURCE   /* memfd_create */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

bool fuzz_one_line(const char *msg)
{
    if (!msg || !msg[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static char tmp_path[256];

static void unlink_tmp(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

void fuzz_file_open(fuzz_file *f, const char *tag)
{
    f->fd = -1;
#ifdef MFD_CLOEXEC
    f->fd = memfd_create(tag, MFD_CLOEXEC);
    if (f->fd >= 0) {
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
        struct stat sb;
        if (stat(f->path, &sb) == 0)
            return;
        close(f->fd);   /* no /proc: fall back to a real file */
        f->fd = -1;
    }
#endif
    const char *dir = getenv("TMPDIR");
    snprintf(f->path, sizeof f->path, "%s/tg_fuzz_%s_XXXXXX", dir && dir[0] ? dir : "/tmp",
             tag);
    f->fd = mkstemp(f->path);
    if (f->fd < 0) {
        fprintf(stderr, "fuzz: cannot create a temporary file %s: %s\n", f->path,
                strerror(errno));
        abort();
    }
    if (!tmp_path[0]) {
        snprintf(tmp_path, sizeof tmp_path, "%s", f->path);
        atexit(unlink_tmp);
    }
}

void fuzz_file_set(fuzz_file *f, const void *data, size_t size)
{
    const unsigned char *p = data;
    FUZZ_CHECK(ftruncate(f->fd, 0) == 0, "ftruncate: %s", strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t k = pwrite(f->fd, p + done, size - done, (off_t)done);
        FUZZ_CHECK(k > 0, "pwrite: %s", strerror(errno));
        done += (size_t)k;
    }
}

unsigned char *fuzz_file_get(fuzz_file *f, size_t *size)
{
    struct stat sb;
    FUZZ_CHECK(fstat(f->fd, &sb) == 0, "fstat: %s", strerror(errno));
    size_t n = (size_t)sb.st_size;
    unsigned char *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL, "out of memory");
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(f->fd, b + done, n - done, (off_t)done);
        FUZZ_CHECK(k > 0, "pread: %s", strerror(errno));
        done += (size_t)k;
    }
    *size = n;
    return b;
}
