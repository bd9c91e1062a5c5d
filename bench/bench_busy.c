/* bench/bench_busy.c: the char-LM step on a shared machine, default threads against one. */
/*
 * A busy loop of our own (a child process spinning on one core) stands in for another
 * user's job. Meanwhile the default char-LM training step (2-layer LSTM, hidden 128, batch
 * 50, seq 50, RMSprop, clip 5) runs in fresh processes, alternately with the default
 * thread count (what a user gets without --threads) and with one thread, 3 of each, the
 * first of each pair alternating:
 *   busy hidden=128 batch=50 seq=50 threads_default= tokens_per_s_default=
 *        tokens_per_s_1=  ratio=  (default / 1 thread; >= 1 means threads do not hurt)
 * Each process times a whole run of 10 steps, as a user's first run would go; each side
 * reports its best process. Environment: TG_BENCH_QUICK=1 (6 steps, 2 processes a side),
 * TG_BENCH_HIDDEN (one size, default 128), TG_BENCH_STEPS (steps per run, default 10).
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

#include "bench/bench_util.h"
#include "tapegrad.h"

/* Tokens/s over a run of `steps` training steps, the first ones included: what a user's
 * run gets, the guard's first probes and any switch between threads and one included. */
static double train_rate(int hidden, int steps)
{
    bench_trainer b;
    bench_trainer_init(&b, tg_cell_type_find("lstm"), 2, hidden, 50, 50);
    double t0 = bench_now();
    for (int s = 0; s < steps; s++) {
        bench_trainer_batch(&b);
        tg_tape_reset(b.tape);
        tg_tensor *loss = tg_charlm_loss(b.tape, &b.m, b.in, b.target, b.B, b.T, b.state,
                                         true, &b.rng);
        tg_params_zero_grad(b.ps);
        if (!loss || tg_backward(b.tape, loss) != TG_OK)
            bench_die("step", tg_tape_errmsg(b.tape));
        tg_clip_grad_norm(b.ps, 5.0);
        if (tg_optim_step(b.opt) != TG_OK)
            bench_die("optimizer", tg_last_error());
    }
    double rate = (double)b.B * b.T * steps / (bench_now() - t0);
    bench_trainer_free(&b);
    return rate;
}

/* Runs train_rate in a fresh process (threads 0: the default); returns its rate. */
static double rate_in_child(int hidden, int steps, int threads)
{
    int fd[2];
    if (pipe(fd) != 0)
        bench_die("pipe", "failed");
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork", "failed");
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
        bench_die("child", "no result");
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

int main(void)
{
    bool quick = bench_quick();
    const char *hs = getenv("TG_BENCH_HIDDEN");
    int hidden = hs && atoi(hs) > 0 ? atoi(hs) : 128;
    const char *ss = getenv("TG_BENCH_STEPS");
    int steps = ss && atoi(ss) > 0 ? atoi(ss) : quick ? 6 : 10, procs = quick ? 2 : 3;
    int def_threads = omp_get_max_threads();   /* read only: no parallel region here */
    pid_t busy = fork();
    if (busy < 0)
        bench_die("fork", "failed");
    if (busy == 0) {   /* the other user's job: spins until killed */
        volatile unsigned long spin = 0;
        for (;;)
            spin++;
    }
    double best_def = 0, best_one = 0;
    for (int p = 0; p < procs; p++) {
        double d, o;   /* which side goes first alternates, so neither gains by order */
        if (p % 2 == 0) {
            d = rate_in_child(hidden, steps, 0);
            o = rate_in_child(hidden, steps, 1);
        } else {
            o = rate_in_child(hidden, steps, 1);
            d = rate_in_child(hidden, steps, 0);
        }
        printf("# busy process %d: default %.0f tokens/s, 1 thread %.0f\n", p, d, o);
        best_def = d > best_def ? d : best_def;
        best_one = o > best_one ? o : best_one;
    }
    kill(busy, SIGKILL);
    waitpid(busy, NULL, 0);
    printf("busy hidden=%d batch=50 seq=50 steps=%d threads_default=%d "
           "tokens_per_s_default=%.0f tokens_per_s_1=%.0f ratio=%.2f\n", hidden, steps,
           def_threads, best_def, best_one, best_def / best_one);
    return 0;
}
