/* fuzz/replay.c: runs a fuzz target over files and directories (no libFuzzer needed). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"
#include "nn/text.h"

/*
 *   replay_NAME PATH...
 *
 * Feeds every regular file named (directories: every file in them, in name order) to
 * LLVMFuzzerTestOneInput once, as libFuzzer would replay a corpus. Built with gcc and
 * -fsanitize=address,undefined, it turns the seed corpora and the crash inputs kept
 * under tests/fuzz_regress/ into regression tests. Exits 0 when every input ran; a
 * finding aborts (the sanitizer or the target's check prints why).
 */

static long inputs;
static unsigned long long bytes;

static int run_file(const char *path)
{
    unsigned char *buf;
    size_t n;
    if (tg_text_read_file(path, &buf, &n) != TG_OK) {
        fprintf(stderr, "replay: %s\n", tg_last_error());
        return 1;
    }
    /* a copy of exactly n bytes (buf may be larger), so ASan sees any read past the input */
    unsigned char *data = malloc(n ? n : 1);
    if (!data) {
        free(buf);
        return 1;
    }
    memcpy(data, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    inputs++;
    bytes += n;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[count] = malloc(len);
        if (!names[count])
            break;
        snprintf(names[count], len, "%s/%s", dir, e->d_name);
        count++;
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode))
            rc |= run_file(names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else {
            rc |= S_ISDIR(sb.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        }
    }
    printf("replayed %ld inputs (%llu bytes)%s\n", inputs, bytes,
           rc ? ", some could not be read" : ", no findings");
    return rc;
}
