/* bench/bench_busy.c: the char-LM step on a shared machine, default threads against one. */
/*
 * A busy loop of our own (a child process spinning on one core) stands in for another
 * user's job. Meanwhile the default char-LM training step (2-layer LSTM, hidden 128, batch
 * 50, seq 50, RMSprop, clip 5) runs in fresh processes, alternately with the default
 * thread count (what a user gets without --threads) and with one thread, 3 of each:
 *   busy hidden=128 batch=50 seq=50 threads_default= tokens_per_s_default=
 *        tokens_per_s_1=  ratio=  (default / 1 thread; >= 1 means threads do not hurt)
 * Each process times 8 steps after 2 warm-up steps (median); each side reports its best
 * process. Environment: TG_BENCH_QUICK=1 (4 steps, 2 processes a side), TG_BENCH_HIDDEN
 * (one size, default 128).
 */
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tapegrad.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_busy: %s: %s\n", what, msg);
    exit(1);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Tokens/s of the median of `steps` training steps (after 2 warm-up steps). */
static double train_rate(int hidden, int steps)
{
    const int V = 65;
    const int64_t B = 50, T = 50;
    tg_charlm_config cfg = {.cell = tg_cell_type_find("lstm"), .vocab = V, .layers = 2,
                            .hidden = hidden};
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_charlm m;
    tg_init init = {.kind = TG_INIT_UNIFORM, .scale = 0.08};
    if (!ps || tg_charlm_init(&m, ps, &cfg, &init, &rng) != TG_OK)
        die("init", "failed");
    tg_optim_config oc = tg_optim_defaults(TG_RMSPROP);
    oc.lr = 2e-3;
    tg_optim *opt = tg_optim_new(ps, &oc);
    tg_tape *tape = tg_tape_new();
    tg_stack_state *state = tg_stack_state_new(&m.rnn, TG_F32, B);
    int32_t *in = malloc((size_t)(B * T) * sizeof *in), *tg = malloc((size_t)(B * T) * sizeof *tg);
    double *secs = malloc((size_t)steps * sizeof *secs);
    if (!opt || !tape || !state || !in || !tg || !secs)
        die("setup", "out of memory");
    for (int s = 0; s < 2 + steps; s++) {
        for (int64_t i = 0; i < B * T; i++) {
            in[i] = (int32_t)tg_rng_below(&rng, V);
            tg[i] = (int32_t)tg_rng_below(&rng, V);
        }
        double t0 = now();
        tg_tape_reset(tape);
        tg_tensor *loss = tg_charlm_loss(tape, &m, in, tg, B, T, state, true, &rng);
        tg_params_zero_grad(ps);
        if (!loss || tg_backward(tape, loss) != TG_OK)
            die("step", tg_tape_errmsg(tape));
        tg_clip_grad_norm(ps, 5.0);
        if (tg_optim_step(opt) != TG_OK)
            die("optimizer", "failed");
        if (s >= 2)
            secs[s - 2] = now() - t0;
    }
    qsort(secs, (size_t)steps, sizeof *secs, cmp_double);
    double rate = (double)(B * T) / secs[steps / 2];
    free(secs), free(in), free(tg);
    tg_stack_state_free(state);
    tg_tape_free(tape);
    tg_optim_free(opt);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
    return rate;
}

/* Runs train_rate in a fresh process (threads 0: the default); returns its rate. */
static double rate_in_child(int hidden, int steps, int threads)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe", "failed");
    pid_t pid = fork();
    if (pid < 0)
        die("fork", "failed");
    if (pid == 0) {
        close(fd[0]);
        if (threads > 0)
            tg_set_num_threads(threads);
        double r = train_rate(hidden, steps);
        if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    double r = 0;
    if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r)
        die("child", "no result");
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

int main(void)
{
    const char *q = getenv("TG_BENCH_QUICK");
    bool quick = q && *q && strcmp(q, "0") != 0;
    const char *hs = getenv("TG_BENCH_HIDDEN");
    int hidden = hs && atoi(hs) > 0 ? atoi(hs) : 128;
    int steps = quick ? 4 : 8, procs = quick ? 2 : 3;
    int def_threads = omp_get_max_threads();   /* read only: no parallel region here */
    pid_t busy = fork();
    if (busy < 0)
        die("fork", "failed");
    if (busy == 0) {   /* the other user's job: spins until killed */
        volatile unsigned long spin = 0;
        for (;;)
            spin++;
    }
    double best_def = 0, best_one = 0;
    for (int p = 0; p < procs; p++) {
        double d = rate_in_child(hidden, steps, 0), o = rate_in_child(hidden, steps, 1);
        printf("# busy process %d: default %.0f tokens/s, 1 thread %.0f\n", p, d, o);
        best_def = d > best_def ? d : best_def;
        best_one = o > best_one ? o : best_one;
    }
    kill(busy, SIGKILL);
    waitpid(busy, NULL, 0);
    printf("busy hidden=%d batch=50 seq=50 threads_default=%d tokens_per_s_default=%.0f "
           "tokens_per_s_1=%.0f ratio=%.2f\n", hidden, def_threads, best_def, best_one,
           best_def / best_one);
    return 0;
}
