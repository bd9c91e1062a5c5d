/* examples/charlm/progress.c: training progress: one updating line on a terminal, a line
   every N steps otherwise, nothing but the summary with --quiet. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "examples/charlm/charlm.h"

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(progress *p, bool quiet, int64_t every)
{
    p->tty = isatty(STDOUT_FILENO) != 0;
    p->quiet = quiet;
    p->line_open = false;
    p->every = every > 0 ? every : 100;
    p->last_draw = 0.0;
    p->last_line = now_s();
}

/* "1h02m", "3m07s", "12s" */
static void fmt_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, size, "%lds", t);
}

void progress_step(progress *p, int64_t step, int64_t total, double loss, double tokens_per_s,
                   double eta_s, double lr)
{
    if (p->quiet)
        return;
    double t = now_s();
    char eta[32];
    fmt_duration(eta_s, eta, sizeof eta);
    if (p->tty) {
        /* redraw at most 10 times a second, and always on the last step */
        if (step != total && t - p->last_draw < 0.1)
            return;
        p->last_draw = t;
        int width = 0;
        while (width < 30 && (double)width < 30.0 * (double)step / (double)total)
            width++;
        printf("\r\033[K%6lld/%lld [%-30.*s] loss %.4f  %.0f tok/s  ETA %s", (long long)step,
               (long long)total, width, "==============================", loss, tokens_per_s,
               eta);
        fflush(stdout);
        p->line_open = true;
        return;
    }
    if (step % p->every == 0 || step == total) {
        printf("step %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s  ETA %s\n", (long long)step,
               (long long)total, loss, lr, tokens_per_s, eta);
        fflush(stdout);
        p->last_line = t;
    }
}

void progress_printf(progress *p, const char *fmt, ...)
{
    if (p->quiet)
        return;
    if (p->line_open) {
        printf("\r\033[K"); /* the updating line is redrawn after this one */
        p->line_open = false;
        p->last_draw = 0.0;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void progress_end(progress *p)
{
    if (p->line_open) {
        printf("\n");
        fflush(stdout);
        p->line_open = false;
    }
}
