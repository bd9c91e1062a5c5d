/* fuzz/fuzz.h: helpers shared by the libFuzzer targets: in-memory files, checks that abort. */
#ifndef TG_FUZZ_FUZZ_H
#define TG_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The entry point every target defines (libFuzzer's, also called by fuzz/replay.c). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A named file whose whole content is replaced by fuzz_file_set: a memfd reached through
   /proc/self/fd/N (no disk I/O), or, where memfd_create is missing, a mkstemp file in
   $TMPDIR that is unlinked at exit. */
typedef struct fuzz_file {
    int fd;
    char path[256];
} fuzz_file;

/* Opens f once (aborts when no file can be had: the harness cannot run). */
void fuzz_file_open(fuzz_file *f, const char *tag);
/* Makes data[0..size) the file's whole content (aborts on a write error). */
void fuzz_file_set(fuzz_file *f, const void *data, size_t size);
/* Reads the file back into a malloc'ed buffer; *size receives its length. */
unsigned char *fuzz_file_get(fuzz_file *f, size_t *size);

/* Aborts (a finding for libFuzzer) with the message when cond is false. */
#define FUZZ_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        if (!(cond))                                                                     \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                           \
    } while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* True when msg is a non-empty single line of printable text (what every error message
   of the library and the tool promises). */
bool fuzz_one_line(const char *msg);

#endif /* TG_FUZZ_FUZZ_H */
