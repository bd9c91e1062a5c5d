/* examples/charlm/main.c: charlm, a character-level language model on tapegrad: the
   command dispatch (train, sample, eval, gradcheck) and error messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "examples/charlm/charlm.h"
#include "examples/charlm/dist.h"
#include "examples/charlm/viz.h"

static const char *error_prefix = "charlm";

void set_error_prefix(const char *cmd)
{
    error_prefix = cmd;
}

/* The line goes out in one write. stderr is unbuffered: written piece by piece, output of
   another stream could land inside it (under mpirun, rank 0's stdout is read apart from
   its stderr, and the newline ending a progress line split an error line in two). A
   message longer than the buffer is cut short. */
void errorf(const char *fmt, ...)
{
    fflush(stdout);
    char line[4608];
    int prefix = snprintf(line, sizeof line, "charlm %.64s: ", error_prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + prefix, sizeof line - (size_t)prefix - 1, fmt, ap);   /* room for \n */
    va_end(ap);
    size_t n = strlen(line);
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        options_usage(stderr, CMD_COUNT);
        return EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 ||
        strcmp(first, "help") == 0) {
        if (argc > 2 && strcmp(first, "help") == 0 && strcmp(argv[2], "viz") == 0) {
            viz_usage(stdout);
            return EXIT_OK;
        }
        if (argc > 2 && strcmp(first, "help") == 0) {
            charlm_cmd c = cmd_parse(argv[2]);
            if (c == CMD_COUNT) {
                fprintf(stderr, "charlm: unknown command '%s' (see charlm --help)\n", argv[2]);
                return EXIT_USAGE;
            }
            options_usage(stdout, c);
            return EXIT_OK;
        }
        options_usage(stdout, CMD_COUNT);
        printf("\nGate viewer:\n  viz         an HTML page of every gate over a text "
               "('charlm viz --help')\n");
        return EXIT_OK;
    }
    if (strcmp(first, "--man") == 0) {   /* make builds charlm.1 with this */
        options_man(stdout, viz_usage);
        return EXIT_OK;
    }
    if (strcmp(first, "--version") == 0) {
        printf("charlm (tapegrad) 0.1.0, gemm backend %s\n", tg_gemm_backend());
        return EXIT_OK;
    }
    if (strcmp(first, "viz") == 0)
        return cmd_viz(argc - 1, argv + 1);
    charlm_cmd cmd = cmd_parse(first);
    if (cmd == CMD_COUNT) {
        fprintf(stderr, "charlm: unknown command '%s' (commands: train, sample, eval, "
                        "gradcheck, viz; see charlm --help)\n", first);
        return EXIT_USAGE;
    }
    set_error_prefix(cmd_name(cmd));
    charlm_opts o;
    int rc = options_parse(cmd, argc - 1, argv + 1, &o);
    if (rc < 0)
        return EXIT_OK; /* --help */
    if (rc != EXIT_OK)
        return rc;
    if (cmd == CMD_TRAIN) {
        /* mpirun -np N charlm train ...: every rank trains its share of the batch (built
           without MPI, dist_start and dist_end do nothing) */
        if ((rc = dist_start(&argc, &argv, &o)) != EXIT_OK)
            return dist_end(rc);
        apply_threads(&o);
        return dist_end(cmd_train(&o));
    }
    apply_threads(&o);
    switch (cmd) {
    case CMD_TRAIN: return cmd_train(&o);
    case CMD_SAMPLE: return cmd_sample(&o);
    case CMD_EVAL: return cmd_eval(&o);
    case CMD_GRADCHECK: return cmd_gradcheck(&o);
    default: return EXIT_USAGE;
    }
}
