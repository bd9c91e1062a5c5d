/* tests/mpi/dist_bench.c: time of tg_dist_average_grads (and of a plain MPI_Allreduce of the
   same floats, for comparison) on the default char-LM's gradient size.
   mpicc -std=c11 -O2 -fopenmp -I. tests/mpi/dist_bench.c build/mpi/libtapegrad.a -lm
   mpirun -np 2 ./a.out [ELEMENTS=239297] [REPEATS=200] */
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

#include "optim/dist.h"
#include "tapegrad.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int64_t n = argc > 1 ? atoll(argv[1]) : 239297;   /* LSTM 2 x 128, vocabulary 65 */
    int reps = argc > 2 ? atoi(argv[2]) : 200;
    tg_set_num_threads(1);
    tg_params *ps = tg_params_new(TG_F32);
    int64_t shape[1] = {n};
    tg_tensor *t = tg_params_add(ps, "g", 1, shape);
    float *g = t->grad;
    char err[256];
    double best[2] = {1e30, 1e30}, total[2] = {0, 0};
    float *tmp = malloc((size_t)n * sizeof *tmp);
    for (int k = 0; k < 2 * reps; k++) {
        for (int64_t i = 0; i < n; i++)
            g[i] = (float)(i % 7) * 0.25f;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (k % 2 == 0)
            tg_dist_average_grads(ps, MPI_COMM_WORLD, 1.0 / size, err, sizeof err);
        else
            MPI_Allreduce(g, tmp, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = MPI_Wtime() - t0;
        total[k % 2] += dt;
        if (dt < best[k % 2])
            best[k % 2] = dt;
    }
    if (rank == 0)
        printf("ranks=%d elements=%lld average_grads_ms=%.3f (best %.3f) "
               "allreduce_ms=%.3f (best %.3f)\n", size, (long long)n, 1e3 * total[0] / reps,
               1e3 * best[0], 1e3 * total[1] / reps, 1e3 * best[1]);
    free(tmp);
    tg_params_free(ps);
    MPI_Finalize();
    return 0;
}
