/* tests/mpi/dist_api.c: optim/dist.h on N ranks (run by tests/mpi_test.sh under mpirun):
   exact fixed-order sums, agreed errors, broadcast and drift checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "optim/dist.h"
#include "tapegrad.h"

static int rank, size, failed, passed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "rank %d: FAIL: %s\n", rank, what);
    }
}

/* The gradient rank r holds at element i (any rank can compute anyone's). */
static double grad_of(int r, int64_t i)
{
    return sin(0.37 * (double)i + 1.3 * r) * (1.0 + 1e-3 * (double)(i % 97)) / (r + 1.5);
}

static double weight_of(int r)
{
    return (double)(r + 1) / ((double)size * (size + 1) / 2.0);
}

/* A collection with a few shapes and one tensor large enough for the threaded sum. */
static tg_params *make_params(tg_dtype dt, int64_t big)
{
    tg_params *ps = tg_params_new(dt);
    int64_t s1[2] = {3, 5}, s2[1] = {7}, s3[3] = {2, 2, 3}, s4[1] = {big};
    tg_params_add(ps, "a", 2, s1);
    tg_params_add(ps, "b", 1, s2);
    tg_params_add(ps, "c", 3, s3);
    tg_params_add(ps, "big", 1, s4);
    return ps;
}

static void fill_grads(tg_params *ps, int r)
{
    int64_t k = 0;
    for (int p = 0; p < tg_params_count(ps); p++) {
        tg_tensor *t = tg_params_at(ps, p);
        for (int64_t i = 0; i < t->numel; i++, k++) {
            if (t->dtype == TG_F64)
                ((double *)t->grad)[i] = grad_of(r, k);
            else
                ((float *)t->grad)[i] = (float)grad_of(r, k);
        }
    }
}

/* Every element equals sum_r w_r * g_r summed in rank order in double, rounded once. */
static int grads_exact(tg_params *ps)
{
    int64_t k = 0;
    for (int p = 0; p < tg_params_count(ps); p++) {
        tg_tensor *t = tg_params_at(ps, p);
        for (int64_t i = 0; i < t->numel; i++, k++) {
            double acc = 0.0;
            for (int r = 0; r < size; r++) {
                double g = t->dtype == TG_F64 ? grad_of(r, k) : (double)(float)grad_of(r, k);
                acc += weight_of(r) * g;
            }
            if (t->dtype == TG_F64 ? ((double *)t->grad)[i] != acc
                                   : ((float *)t->grad)[i] != (float)acc)
                return 0;
        }
    }
    return 1;
}

static int grads_are_own(tg_params *ps)
{
    int64_t k = 0;
    for (int p = 0; p < tg_params_count(ps); p++) {
        tg_tensor *t = tg_params_at(ps, p);
        for (int64_t i = 0; i < t->numel; i++, k++) {
            double g = t->dtype == TG_F64 ? ((double *)t->grad)[i] : ((float *)t->grad)[i];
            double want = t->dtype == TG_F64 ? grad_of(rank, k) : (double)(float)grad_of(rank, k);
            if (g != want)
                return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tg_set_num_threads(1);
    char err[512];

    /* 1-2. the weighted sum is exact and identical everywhere (f32 and f64), including a
       tensor large enough to be summed by several threads */
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_params *ps = make_params(dt, 100003);
        fill_grads(ps, rank);
        if (d)
            tg_set_num_threads(2);
        tg_status st = tg_dist_average_grads(ps, MPI_COMM_WORLD, weight_of(rank), err,
                                             sizeof err);
        tg_set_num_threads(1);
        check(st == TG_OK, "average_grads returns TG_OK");
        check(grads_exact(ps), d ? "f64 grads are the rank-order weighted sum"
                                 : "f32 grads are the rank-order weighted sum, rounded once");
        char e2[512];
        st = tg_dist_check_params(ps, MPI_COMM_WORLD, e2, sizeof e2);
        check(st == TG_OK, "fresh zero parameters agree");
        tg_params_free(ps);
    }

    /* 3. a non-finite weight on the last rank: every rank refuses, gradients untouched */
    {
        tg_params *ps = make_params(TG_F32, 10);
        fill_grads(ps, rank);
        err[0] = '\0';
        tg_status st = tg_dist_average_grads(ps, MPI_COMM_WORLD,
                                             rank == size - 1 ? NAN : 0.5, err, sizeof err);
        check(st == TG_ERR_ARG, "a NaN weight anywhere is TG_ERR_ARG everywhere");
        check(strstr(err, "weight") != NULL, "the message names the weight");
        check(grads_are_own(ps), "gradients unchanged after the refusal");
        tg_params_free(ps);
    }

    /* 4. layouts that differ (the last rank's "b" is longer): TG_ERR_SHAPE everywhere */
    {
        tg_params *ps = make_params(TG_F32, rank == size - 1 ? 11 : 10);
        fill_grads(ps, rank);
        tg_status st = tg_dist_average_grads(ps, MPI_COMM_WORLD, 1.0, err, sizeof err);
        check(size == 1 ? st == TG_OK : st == TG_ERR_SHAPE,
              "a layout mismatch is TG_ERR_SHAPE everywhere");
        if (size > 1)
            check(grads_are_own(ps), "gradients unchanged after a layout mismatch");
        tg_params_free(ps);
        /* same sizes, another name */
        ps = tg_params_new(TG_F32);
        int64_t s[1] = {4};
        tg_params_add(ps, rank == size - 1 ? "y" : "x", 1, s);
        st = tg_dist_average_grads(ps, MPI_COMM_WORLD, 1.0, err, sizeof err);
        check(size == 1 ? st == TG_OK : st == TG_ERR_SHAPE && strstr(err, "names"),
              "another name with the same sizes is TG_ERR_SHAPE (names or shapes)");
        tg_params_free(ps);
    }

    /* 5. NULL parameters on the last rank: TG_ERR_NULL everywhere, nobody hangs */
    {
        tg_params *ps = make_params(TG_F32, 10);
        tg_status st = tg_dist_average_grads(rank == size - 1 ? NULL : ps, MPI_COMM_WORLD,
                                             1.0, err, sizeof err);
        check(st == TG_ERR_NULL, "a NULL collection anywhere is TG_ERR_NULL everywhere");
        tg_params_free(ps);
    }

    /* 6-7. broadcast from the last rank, then the drift check */
    {
        tg_params *ps = make_params(TG_F32, 1000);
        for (int p = 0; p < tg_params_count(ps); p++) {
            tg_tensor *t = tg_params_at(ps, p);
            for (int64_t i = 0; i < t->numel; i++)
                ((float *)t->data)[i] = (float)(rank * 1000 + i);
        }
        int root = size - 1;
        if (size > 1) {
            tg_status st0 = tg_dist_check_params(ps, MPI_COMM_WORLD, err, sizeof err);
            check(st0 == TG_ERR_ARG, "different values are reported before the broadcast");
        }
        tg_status st = tg_dist_broadcast_params(ps, MPI_COMM_WORLD, root, err, sizeof err);
        check(st == TG_OK, "broadcast_params returns TG_OK");
        int same = 1;
        for (int p = 0; p < tg_params_count(ps); p++) {
            tg_tensor *t = tg_params_at(ps, p);
            for (int64_t i = 0; i < t->numel; i++)
                same &= ((float *)t->data)[i] == (float)(root * 1000 + i);
        }
        check(same, "every rank holds the root's values");
        check(tg_dist_check_params(ps, MPI_COMM_WORLD, err, sizeof err) == TG_OK,
              "check_params agrees after the broadcast");
        if (rank == root)
            ((float *)tg_params_at(ps, 3)->data)[500] += 1.0f;
        st = tg_dist_check_params(ps, MPI_COMM_WORLD, err, sizeof err);
        check(size == 1 ? st == TG_OK : st == TG_ERR_ARG,
              "one changed element on one rank is found");
        st = tg_dist_broadcast_params(ps, MPI_COMM_WORLD, size, err, sizeof err);
        check(st == TG_ERR_ARG, "a root out of range is TG_ERR_ARG everywhere");
        tg_params_free(ps);
    }

    /* 8. gradients and scalars in one exchange */
    {
        tg_params *ps = make_params(TG_F32, 5000);
        fill_grads(ps, rank);
        double v[3] = {weight_of(rank) * 3.25, rank == 0, 1.0 / (rank + 3)};
        tg_status st = tg_dist_average_grads_sum(ps, MPI_COMM_WORLD, weight_of(rank), v, 3,
                                                 err, sizeof err);
        double want[3] = {0, 0, 0};
        for (int r = 0; r < size; r++) {
            want[0] += weight_of(r) * 3.25;
            want[1] += r == 0;
            want[2] += 1.0 / (r + 3);
        }
        check(st == TG_OK && grads_exact(ps), "average_grads_sum: gradients as without values");
        check(v[0] == want[0] && v[1] == want[1] && v[2] == want[2],
              "average_grads_sum: values summed in rank order");
        fill_grads(ps, rank);
        double u[2] = {1.0, 2.0};
        st = tg_dist_average_grads_sum(ps, MPI_COMM_WORLD, 1.0, u, rank == size - 1 ? 1 : 2,
                                       err, sizeof err);
        check(size == 1 ? st == TG_OK : st == TG_ERR_ARG && u[0] == 1.0 && u[1] == 2.0 &&
                                            grads_are_own(ps),
              "average_grads_sum: differing counts refused everywhere, nothing changed");
        double many[TG_DIST_MAX_VALUES + 1] = {0};
        st = tg_dist_average_grads_sum(ps, MPI_COMM_WORLD, 1.0, many, TG_DIST_MAX_VALUES + 1,
                                       err, sizeof err);
        check(st == TG_ERR_ARG, "average_grads_sum: more than TG_DIST_MAX_VALUES refused");
        tg_params_free(ps);
    }

    /* 9-10. fixed-order sums of scalars (in the header, and beyond it) */
    {
        double big[20], want[20] = {0};
        for (int i = 0; i < 20; i++)
            big[i] = 0.01 * i + rank;
        for (int r = 0; r < size; r++)
            for (int i = 0; i < 20; i++)
                want[i] += 0.01 * i + r;
        tg_status st = tg_dist_sum(big, 20, MPI_COMM_WORLD, err, sizeof err);
        int same = st == TG_OK;
        for (int i = 0; i < 20; i++)
            same &= big[i] == want[i];
        check(same, "dist_sum of 20 values (beyond the header) adds in rank order");
    }
    /* fixed-order sums of scalars */
    {
        double v[2] = {0.1 * rank + 1e-17, weight_of(rank)};
        tg_status st = tg_dist_sum(v, 2, MPI_COMM_WORLD, err, sizeof err);
        double w0 = 0.0, w1 = 0.0;
        for (int r = 0; r < size; r++) {
            w0 += 0.1 * r + 1e-17;
            w1 += weight_of(r);
        }
        check(st == TG_OK && v[0] == w0 && v[1] == w1, "dist_sum adds in rank order");
        st = tg_dist_sum(v, rank == size - 1 ? 1 : 2, MPI_COMM_WORLD, err, sizeof err);
        check(size == 1 ? st == TG_OK : st == TG_ERR_ARG, "dist_sum refuses differing n");
    }

    int total_failed = 0, total_passed = 0;
    MPI_Allreduce(&failed, &total_failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&passed, &total_passed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("dist api on %d ranks: %d checks passed, %d failed\n", size, total_passed,
               total_failed);
    MPI_Finalize();
    return total_failed ? 1 : 0;
}
