/* examples/charlm/dist.c: 'charlm train' across MPI ranks: startup, the batch split, the
   per-step exchange (gradients, loss, stop), state gathering and the watchdog; built
   without MPI, the same functions act for one process and exchange nothing. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "examples/charlm/charlm.h"
#include "examples/charlm/dist.h"

static int g_rank = 0, g_size = 1;
static int64_t g_batch = 1, g_first = 0, g_rows = 1;
static volatile sig_atomic_t g_pending = 0;   /* a signal received, not yet agreed on */

int dist_rank(void)
{
    return g_rank;
}

int dist_size(void)
{
    return g_size;
}

int64_t dist_first_row(void)
{
    return g_first;
}

int64_t dist_rows(void)
{
    return g_rows;
}

/* ---- the batch ------------------------------------------------------------------------- */
int dist_set_batch(int64_t B, bool quiet)
{
    if (B < g_size) {
        if (g_rank == 0)
            errorf("--batch %lld is smaller than the %d ranks: every rank needs at least one "
                   "row (use --batch >= %d or fewer ranks)", (long long)B, g_size, g_size);
        return EXIT_USAGE;
    }
    if (B > INT64_MAX / g_size) {
        errorf("--batch %lld is too large", (long long)B);
        return EXIT_USAGE;
    }
    g_batch = B;
    g_first = B * g_rank / g_size;
    g_rows = B * (g_rank + 1) / g_size - g_first;
    if (g_rank == 0 && !quiet && g_size > 1) {
        int64_t lo = B / g_size, hi = (B + g_size - 1) / g_size;
        if (lo == hi)
            printf("data parallel: %d ranks x %lld rows, %d thread%s each\n", g_size,
                   (long long)lo, tg_get_num_threads(), tg_get_num_threads() == 1 ? "" : "s");
        else
            printf("data parallel: %d ranks x %lld-%lld rows, %d thread%s each\n", g_size,
                   (long long)lo, (long long)hi, tg_get_num_threads(),
                   tg_get_num_threads() == 1 ? "" : "s");
        fflush(stdout);
    }
    return EXIT_OK;
}

/* ---- signals and dropout ------------------------------------------------------------------- */
void dist_on_signal(int sig)
{
    g_pending = sig;
    signal(sig, SIG_DFL);
}

tg_rng *dist_dropout_rng(tg_rng *rng, uint64_t seed, int64_t step)
{
    static tg_rng mine;
    if (g_size < 2)
        return rng;
    tg_rng_seed(&mine, seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)step * 0xBF58476D1CE4E5B9ull ^
                           (uint64_t)(g_rank + 1) * 0x94D049BB133111EBull);
    return &mine;
}

#ifdef TG_WITH_MPI

#include <mpi.h>

#include "optim/dist.h"

static bool g_started = false;
static MPI_Comm g_end_comm = MPI_COMM_NULL;
static double g_exchange_s = 0.0;   /* time in dist_step's exchange (waiting included) */
static int64_t g_exchanges = 0;

/* ---- watchdog ------------------------------------------------------------------------
 * Around every exchange an alarm is armed: a rank that waits longer than the timeout
 * for the others (one hangs, or died without the launcher noticing) prints why and
 * exits, and mpirun then ends the rest. The message is prepared before arming, so the
 * handler only calls write and _exit (async-signal-safe).
 */
static unsigned g_timeout = 600;
static char g_alarm_msg[256];
static size_t g_alarm_len;

static void on_alarm(int sig)
{
    (void)sig;
    ssize_t k = write(STDERR_FILENO, g_alarm_msg, g_alarm_len);
    (void)k;
    _exit(EXIT_RUNTIME);
}

static void watchdog_arm(const char *what)
{
    if (g_timeout == 0 || g_size < 2)
        return;
    int k = snprintf(g_alarm_msg, sizeof g_alarm_msg,
                     "charlm train: rank %d: no answer from the other ranks for %u s while "
                     "%s (a rank died or hangs; CHARLM_DIST_TIMEOUT sets the limit); "
                     "exiting\n", g_rank, g_timeout, what);
    g_alarm_len = k < 0 ? 0 : (size_t)k < sizeof g_alarm_msg ? (size_t)k
                                                              : sizeof g_alarm_msg - 1;
    alarm(g_timeout);
}

static void watchdog_disarm(void)
{
    if (g_timeout != 0 && g_size >= 2)
        alarm(0);
}

/* ---- start and end ---------------------------------------------------------------------- */
static int mpi_error(int code, const char *call)
{
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    errorf("rank %d: %s failed: %s", g_rank, call, msg);
    return EXIT_RUNTIME;
}

/* ---- the resume checkpoint --------------------------------------------------------------
 * Rank 0 alone writes checkpoints, so on hosts without a shared directory only its host
 * has them. For --resume, rank 0 reads the file and sends its bytes to every rank, which
 * keeps a private copy (removed at the end) and resumes from that.
 */
static char g_resume_copy[PATH_MAX];

static int share_resume(charlm_opts *o)
{
    int64_t size = -1;
    unsigned char *buf = NULL;
    if (g_rank == 0) {
        FILE *f = fopen(o->resume, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0) {
            long n = ftell(f);
            if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc(n > 0 ? (size_t)n : 1)) &&
                fread(buf, 1, (size_t)n, f) == (size_t)n)
                size = n;
        }
        if (f)
            fclose(f);
    }
    int rc = MPI_Bcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_error(rc, "MPI_Bcast");
    }
    if (size < 0) {
        free(buf);   /* rank 0 cannot read it: every rank reports that when resuming */
        return EXIT_OK;
    }
    if (g_rank != 0 && !(buf = malloc(size > 0 ? (size_t)size : 1))) {
        errorf("rank %d: out of memory for the --resume checkpoint", g_rank);
        return EXIT_RUNTIME;
    }
    for (int64_t off = 0; off < size;) {
        int piece = size - off < (1 << 30) ? (int)(size - off) : (1 << 30);
        if ((rc = MPI_Bcast(buf + off, piece, MPI_BYTE, 0, MPI_COMM_WORLD)) != MPI_SUCCESS) {
            free(buf);
            return mpi_error(rc, "MPI_Bcast");
        }
        off += piece;
    }
    if (g_rank != 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(g_resume_copy, sizeof g_resume_copy, "%s/charlm-resume-XXXXXX",
                 dir && *dir ? dir : "/tmp");
        int fd = mkstemp(g_resume_copy);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        bool ok = f && fwrite(buf, 1, (size_t)size, f) == (size_t)size;
        if (f)
            ok = fclose(f) == 0 && ok;
        else if (fd >= 0)
            close(fd);
        if (!ok) {
            errorf("rank %d: cannot keep a copy of the --resume checkpoint in %s",
                   g_rank, g_resume_copy);
            if (fd >= 0)
                unlink(g_resume_copy);
            g_resume_copy[0] = '\0';
            free(buf);
            return EXIT_RUNTIME;
        }
        o->resume = g_resume_copy;
    }
    free(buf);
    return EXIT_OK;
}

int dist_start(int *argc, char ***argv, charlm_opts *o)
{
    int provided = 0;
    /* only the main thread calls MPI; OpenMP threads run the kernels in between */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        errorf("MPI_Init_thread failed");
        return EXIT_RUNTIME;
    }
    g_started = true;
    /* failures come back as error codes (reported, then the job is aborted) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* a communicator of its own for the final agreement, which must never be matched
       with an exchange another rank may still be blocked in */
    if (MPI_Comm_dup(MPI_COMM_WORLD, &g_end_comm) != MPI_SUCCESS)
        g_end_comm = MPI_COMM_NULL;

    const char *t = getenv("CHARLM_DIST_TIMEOUT");
    if (t && *t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end != '\0' || v < 0 || v > 1000000) {
            if (g_rank == 0)
                errorf("CHARLM_DIST_TIMEOUT='%s': expected seconds from 0 (off) to 1000000",
                       t);
            return EXIT_USAGE;
        }
        g_timeout = (unsigned)v;
    }
    if (g_timeout > 0 && g_size > 1) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
    }

    if (!o->given[OPT_DATA] && access(o->data, R_OK) != 0) {
        /* the bundled corpus, seen from build/mpi/examples/charlm (one level deeper than
           the plain build that default_data_path knows) */
        static char path[PATH_MAX + 64];
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        char *slash = k > 0 ? (exe[k] = '\0', strrchr(exe, '/')) : NULL;
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/../../../examples/data/tinyshakespeare.txt", exe);
            if (access(path, R_OK) == 0)
                o->data = path;
        }
    }
    if (g_rank != 0) {
        /* rank 0 speaks for the job; errors still reach stderr from every rank */
        o->quiet = true;
        o->log = NULL;
        o->plot = NULL;
        if (!freopen("/dev/null", "w", stdout))
            errorf("rank %d: cannot silence stdout", g_rank);
    }
    if (o->resume && g_size > 1) {
        int rc = share_resume(o);
        if (rc != EXIT_OK)
            return rc;
    }
    if (!o->given[OPT_THREADS] && g_size > 1) {
        /* share the host's cores between the ranks placed on it */
        MPI_Comm node;
        int local = 1;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                                &node) == MPI_SUCCESS) {
            MPI_Comm_size(node, &local);
            MPI_Comm_free(&node);
        }
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int n = cores > 0 ? (int)(cores / (local > 0 ? local : 1)) : 1;
        o->threads = n > 0 ? n : 1;
    }
    return EXIT_OK;
}

/* Whether every rank reached the end (each with its own rc): a failed rank waits at most
   END_WAIT seconds, since the others may be blocked in an exchange it left; a finished
   rank waits for rank 0's last writes under the watchdog. */
enum { END_WAIT = 5 };

static bool all_reached_end(bool failed)
{
    if (g_end_comm == MPI_COMM_NULL)
        return false;
    int mine = failed, any = 0, done = 0;
    MPI_Request req;
    if (MPI_Iallreduce(&mine, &any, 1, MPI_INT, MPI_MAX, g_end_comm, &req) != MPI_SUCCESS)
        return false;
    if (!failed)
        watchdog_arm("finishing");
    double t0 = now_s();
    while (!done) {
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return false;
        if (!done && failed && now_s() - t0 > END_WAIT)
            return false;   /* the request stays pending: MPI_Abort follows */
        if (!done) {
            struct timespec ts = {0, 1000000};   /* 1 ms: no spinning on a shared host */
            nanosleep(&ts, NULL);
        }
    }
    watchdog_disarm();
    return true;
}

int dist_end(int rc)
{
    if (!g_started)
        return rc;
    if (g_resume_copy[0])
        unlink(g_resume_copy);
    if (getenv("CHARLM_DIST_STATS") && g_exchanges > 0)
        fprintf(stderr, "charlm train: rank %d: %lld exchanges, %.3f s in them (%.2f ms "
                "each, waiting for the other ranks included)\n", g_rank,
                (long long)g_exchanges, g_exchange_s, 1e3 * g_exchange_s / (double)g_exchanges);
    bool failed = rc != EXIT_OK && rc != EXIT_INTERRUPTED;
    if (g_size > 1 && !all_reached_end(failed)) {
        /* the other ranks are waiting in an exchange this rank will never join */
        fprintf(stderr, "charlm train: rank %d failed (exit %d) while other ranks were still "
                "training; aborting all %d ranks\n", g_rank, rc, g_size);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    if (g_end_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g_end_comm);
    MPI_Finalize();
    return rc;
}

/* ---- the exchange of every step ---------------------------------------------------------
 * One library call: the gradients, and in the same round trip the sums over ranks of
 * weight * loss (the global mean loss) and of the flags everyone must agree on.
 */
enum { X_LOSS, X_SIGINT, X_SIGTERM, X_TIME_UP, X_LEN };

int dist_step(tg_params *ps, double *loss, bool time_up, int *sig, bool *time_up_all)
{
    double w = (double)g_rows / (double)g_batch;   /* this rank's share of the mean */
    int pending = g_pending;
    double x[X_LEN] = {w * *loss, pending == SIGINT, pending == SIGTERM,
                       g_rank == 0 && time_up};    /* rank 0's clock decides */
    char err[512] = "";
    watchdog_arm("exchanging gradients");
    double t0 = now_s();
    tg_status st = tg_dist_average_grads_sum(ps, MPI_COMM_WORLD, w, x, X_LEN, err, sizeof err);
    g_exchange_s += now_s() - t0;
    g_exchanges++;
    watchdog_disarm();
    if (st != TG_OK) {
        errorf("rank %d: %s", g_rank, err[0] ? err : tg_status_str(st));
        return EXIT_RUNTIME;
    }
    *loss = x[X_LOSS];
    *sig = x[X_SIGINT] > 0 ? SIGINT : x[X_SIGTERM] > 0 ? SIGTERM : 0;
    *time_up_all = x[X_TIME_UP] > 0;
    return EXIT_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------ */
/* Gathers one layer's (rows,H) block of every rank into dst (B,H) on rank 0. */
static int gather_rows(const float *mine, float *dst, int hidden)
{
    int *counts = NULL, *displs = NULL;
    if (g_rank == 0) {
        counts = malloc((size_t)g_size * sizeof *counts);
        displs = malloc((size_t)g_size * sizeof *displs);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            errorf("out of memory");
            return EXIT_RUNTIME;
        }
        for (int r = 0; r < g_size; r++) {
            int64_t first = g_batch * r / g_size, next = g_batch * (r + 1) / g_size;
            counts[r] = (int)((next - first) * hidden);
            displs[r] = (int)(first * hidden);
        }
    }
    int rc = MPI_Gatherv(mine, (int)(g_rows * hidden), MPI_FLOAT, dst, counts, displs,
                         MPI_FLOAT, 0, MPI_COMM_WORLD);
    free(counts);
    free(displs);
    return rc == MPI_SUCCESS ? EXIT_OK : mpi_error(rc, "MPI_Gatherv");
}

int dist_gather_state(tg_params *ps, const tg_stack_state *st, int64_t B, int hidden,
                      float *const *out)
{
    if (B != g_batch || B * hidden > INT_MAX) {
        errorf("rank %d: cannot gather a state of %lld x %d", g_rank, (long long)B, hidden);
        return EXIT_RUNTIME;
    }
    watchdog_arm("gathering the state for a checkpoint");
    char err[512] = "";
    /* the replicas must not have drifted apart (they cannot, unless something is broken) */
    tg_status s = tg_dist_check_params(ps, MPI_COMM_WORLD, err, sizeof err);
    if (s != TG_OK) {
        watchdog_disarm();
        errorf("rank %d: %s", g_rank, err[0] ? err : tg_status_str(s));
        return EXIT_RUNTIME;
    }
    int64_t per = B * hidden;
    for (int l = 0; l < st->layers; l++) {
        for (int k = 0; k < st->nstate; k++) {
            int rc = gather_rows(st->tensors[l][k]->data, out[k] + l * per, hidden);
            if (rc != EXIT_OK) {
                watchdog_disarm();
                return rc;
            }
        }
    }
    watchdog_disarm();
    return EXIT_OK;
}

#else /* one process */

int dist_start(int *argc, char ***argv, charlm_opts *o)
{
    (void)argc;
    (void)argv;
    (void)o;
    return EXIT_OK;
}

int dist_end(int rc)
{
    return rc;
}

int dist_step(tg_params *ps, double *loss, bool time_up, int *sig, bool *time_up_all)
{
    (void)ps;
    (void)loss;
    *sig = 0;   /* one process: on_signal in train.c stops the loop itself */
    *time_up_all = time_up;
    return EXIT_OK;
}

int dist_gather_state(tg_params *ps, const tg_stack_state *st, int64_t B, int hidden,
                      float *const *out)
{
    (void)ps;
    int64_t per = B * hidden;
    for (int l = 0; l < st->layers; l++)
        for (int k = 0; k < st->nstate; k++)
            memcpy(out[k] + l * per, st->tensors[l][k]->data, (size_t)per * sizeof(float));
    return EXIT_OK;
}

#endif /* TG_WITH_MPI */
