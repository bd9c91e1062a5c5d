/* bench/bench_charlm.c: one char-LM training step (forward, backward, clip, optimizer), timed. */
/*
 * Prints, for the default model (2-layer LSTM, batch 50, seq 50, one-hot input, vocab 65,
 * RMSprop, clip 5) at hidden 128 and 512:
 *   charlm cell= layers= hidden= batch= seq= threads= ms_per_step= tokens_per_s= gflops=
 *          fraction_of_gemm_peak= flops_per_step= fraction_performed= fwd_ms= bwd_ms= opt_ms=
 *          tape_peak_bytes= tape_peak_growth= mallocs_per_step=
 * and before them the GEMM peak it is compared with:
 *   gemm_peak M=1024 K=1024 N=1024 gflops=
 * FLOPs are counted from the model's matmul shapes only: per time step, each 2-D weight
 * (in, out) of the stack multiplies B rows, 2*B*in*out (an LSTM layer's four gates are
 * (B, H+I) @ (H+I, H) each, so 4*2*B*(H+I)*H); the head is
 * (B*T, H) @ (H, V), 2*B*T*H*V; backward counts twice the forward (dX and dW), so a step is
 * 3x the forward matmul FLOPs. gflops = flops_per_step / time per step, and
 * fraction_of_gemm_peak = gflops / the 1024^3 tg_sgemm rate measured in the same run.
 * fraction_performed is the same for the FLOPs the step runs: the first layer's products
 * gather the weight rows of the one-hot input instead of multiplying by it (forward and
 * weight gradient), and backward skips its dX columns (nothing reads them): 3*T*2*B*V*out
 * for each of that layer's weights.
 * ms_per_step is the median of the timed steps (after 3 warm-up steps); tape_peak_growth
 * is the change of tg_tape_bytes_peak over the timed steps, mallocs_per_step the tape's
 * malloc calls per timed step (both 0 when the arena is reused as designed).
 * Environment: TG_BENCH_THREADS (default 2), TG_BENCH_QUICK=1 (fewer steps),
 * TG_BENCH_HIDDEN (e.g. "128" or "128,512", the default), TG_BENCH_CELL (any registered
 * cell type, default lstm).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "tapegrad.h"

/* Best batch-average GFLOP/s of a 1024^3 tg_sgemm over `batches` batches of 4 calls (after
   one warm-up batch); printed when `print`. */
static double gemm_peak(int batches, bool print)
{
    const int64_t n = 1024;
    float *a = malloc((size_t)(n * n) * sizeof *a), *b = malloc((size_t)(n * n) * sizeof *b);
    float *c = malloc((size_t)(n * n) * sizeof *c);
    if (!a || !b || !c)
        bench_die("gemm", "out of memory");
    for (int64_t i = 0; i < n * n; i++) {
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    }
    double best = 0;
    for (int r = 0; r < batches + 1; r++) {
        int per = 4;
        double t = bench_now();
        for (int i = 0; i < per; i++)
            tg_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * (double)n * (double)n * (double)n * per / (bench_now() - t) * 1e-9;
        if (r > 0 && g > best)   /* the first batch warms up */
            best = g;
    }
    free(a);
    free(b);
    free(c);
    if (print)
        printf("gemm_peak M=1024 K=1024 N=1024 gflops=%.1f\n", best);
    return best;
}

/* FLOPs of one training step's matmuls (see the header comment): every 2-D parameter of
   the stack is a weight that multiplies B rows at each of the T steps, plus the head;
   backward costs twice the forward. *skipped: the FLOPs of the V one-hot input rows of
   each first-layer weight, which the step gathers (tg_dense_cols) or does not compute
   (tg_grad_cols) in all three products. */
static double step_flops(tg_params *ps, int64_t B, int64_t T, int hidden, int V,
                         double *skipped)
{
    double fwd = 0;
    *skipped = 0;
    for (int i = 0; i < tg_params_count(ps); i++) {
        const tg_tensor *w = tg_params_at(ps, i);                  /* (in, out) */
        const char *name = tg_params_name(ps, i);
        if (w->ndim != 2 || strncmp(name, "rnn.", 4) != 0)
            continue;
        fwd += (double)T * 2.0 * (double)B * (double)w->numel;
        if (strncmp(name, "rnn.0.", 6) == 0 && w->shape[0] >= V)
            *skipped += 3.0 * (double)T * 2.0 * (double)B * V * (double)w->shape[1];
    }
    fwd += 2.0 * (double)B * (double)T * hidden * V;
    return 3.0 * fwd;
}

static void bench_model(const tg_cell_type *cell, int layers, int hidden, int64_t B, int64_t T,
                        int threads, bool quick)
{
    bench_trainer b;
    bench_trainer_init(&b, cell, layers, hidden, B, T);
    tg_tape *tape = b.tape;
    double skipped;
    double flops = step_flops(b.ps, B, T, hidden, BENCH_VOCAB, &skipped);
    double performed = flops - skipped;          /* what the step actually runs */

    /* Rounds of a GEMM peak measurement and a few steps, so that the peak each fraction
       is taken against was measured seconds apart from the steps (on a shared machine the
       rate of both drifts by tens of percent within a minute). */
    int warm = 3, rounds = quick ? 2 : 5, per_round = hidden >= 512 ? 2 : 4;
    int steps = rounds * per_round;
    double *ms = malloc((size_t)steps * sizeof *ms);
    double *round_ms = malloc((size_t)per_round * sizeof *round_ms);
    double *peaks = malloc((size_t)rounds * sizeof *peaks);
    double *fracs = malloc((size_t)rounds * sizeof *fracs);
    if (!ms || !round_ms || !peaks || !fracs)
        bench_die("setup", "out of memory");
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    size_t peak0 = 0;
    int64_t mallocs0 = 0;
    for (int s = 0; s < warm + steps; s++) {
        int r = s - warm;
        if (r >= 0 && r % per_round == 0)
            peaks[r / per_round] = gemm_peak(2, false);
        bench_trainer_batch(&b);
        if (s == warm) {
            peak0 = tg_tape_bytes_peak(tape);
            mallocs0 = tg_tape_mallocs(tape);
        }
        double t0 = bench_now();
        tg_tape_reset(tape);
        tg_tensor *loss = tg_charlm_loss(tape, &b.m, b.in, b.target, B, T, b.state, true,
                                         &b.rng);
        if (!loss)
            bench_die("forward", tg_tape_errmsg(tape));
        double t1 = bench_now();
        tg_params_zero_grad(b.ps);
        if (tg_backward(tape, loss) != TG_OK)
            bench_die("backward", tg_tape_errmsg(tape));
        double t2 = bench_now();
        tg_clip_grad_norm(b.ps, 5.0);
        if (tg_optim_step(b.opt) != TG_OK)
            bench_die("optimizer", tg_last_error());
        double t3 = bench_now();
        if (r >= 0) {
            ms[r] = round_ms[r % per_round] = (t3 - t0) * 1e3;
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += t3 - t2;
            if (r % per_round == per_round - 1) {
                double step_gflops = flops / (bench_median(round_ms, per_round) * 1e-3) * 1e-9;
                fracs[r / per_round] = step_gflops / peaks[r / per_round];
            }
        }
    }
    size_t peak1 = tg_tape_bytes_peak(tape);
    int64_t mallocs1 = tg_tape_mallocs(tape);
    double med = bench_median(ms, steps), gflops = flops / (med * 1e-3) * 1e-9;
    double peak = bench_median(peaks, rounds);
    double frac = bench_median(fracs, rounds);   /* sorts fracs too */
    printf("charlm cell=%s layers=%d hidden=%d batch=%lld seq=%lld threads=%d "
           "ms_per_step=%.2f tokens_per_s=%.0f gflops=%.1f fraction_of_gemm_peak=%.2f "
           "fraction_range=%.2f-%.2f gemm_peak_gflops=%.1f "
           "flops_per_step=%.4g fraction_performed=%.2f fwd_ms=%.2f bwd_ms=%.2f opt_ms=%.2f "
           "tape_peak_bytes=%zu tape_peak_growth=%lld mallocs_per_step=%.2f\n",
           cell->name, layers, hidden, (long long)B, (long long)T, threads, med,
           (double)(B * T) / (med * 1e-3), gflops, frac, fracs[0], fracs[rounds - 1], peak,
           flops, frac * performed / flops, t_fwd * 1e3 / steps, t_bwd * 1e3 / steps,
           t_opt * 1e3 / steps, peak1,
           (long long)peak1 - (long long)peak0, (double)(mallocs1 - mallocs0) / steps);
    fflush(stdout);
    free(ms);
    free(round_ms);
    free(peaks);
    free(fracs);
    bench_trainer_free(&b);
}

int main(void)
{
    int threads = bench_threads();
    bool quick = bench_quick();
    const char *cs = getenv("TG_BENCH_CELL");
    const tg_cell_type *cell = tg_cell_type_find(cs && *cs ? cs : "lstm");
    if (!cell)
        bench_die("TG_BENCH_CELL", "not a registered cell type");
    omp_set_num_threads(threads);
    printf("# bench_charlm threads=%d gemm=%s (flops: matmuls only, forward 2*M*N*K, "
           "backward 2x forward)\n", threads, tg_gemm_backend());
    gemm_peak(quick ? 3 : 7, true);
    const char *p = NULL;
    for (int h; (h = bench_next_hidden(&p)) > 0;)
        bench_model(cell, 2, h, 50, 50, threads, quick);
    return 0;
}
