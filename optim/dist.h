/* optim/dist.h: data-parallel training over MPI: gradients combined across ranks in a
   fixed order, parameters broadcast and compared (libtapegrad built with `make MPI=1`). */
#ifndef TG_OPTIM_DIST_H
#define TG_OPTIM_DIST_H

#include <stddef.h>

#include <mpi.h>

#include "autograd/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Data parallelism: every rank holds the same parameters, computes the gradient of its own
 * share of the batch, then calls tg_dist_average_grads with the weight of that share in
 * the global loss (rows_r / B when the loss is a mean over the global batch of B rows).
 * Afterwards every rank holds the same gradient
 *
 *     g = sum over r = 0 .. N-1 of weight_r * g_r
 *
 * accumulated in double in rank order and rounded once to the parameters' dtype. The
 * order never depends on timing, on the MPI library's reduction algorithm (MPI_Allreduce
 * picks one by message size and topology) or on the network, so a run is bit-identical
 * from run to run. Clip and step after it, on every rank: the steps are then identical.
 *
 *     tg_params_zero_grad(ps);
 *     tg_backward(tape, loss);                                  // my rows only
 *     tg_dist_average_grads(ps, MPI_COMM_WORLD, (double)my_rows / B, err, sizeof err);
 *     tg_clip_grad_norm(ps, 5.0);                               // same on every rank
 *     tg_optim_step(opt);
 *
 * Every function here is collective: each rank of comm makes the same calls in the same
 * order. Argument errors are agreed: the ranks first exchange a small header (parameter
 * count, element count, dtype, a CRC of the names and shapes, the weight), so a problem
 * on any rank makes every rank return the same status with nothing changed, instead of
 * leaving the others waiting. MPI failures are returned (TG_ERR_IO, message from
 * MPI_Error_string) only when comm's error handler is MPI_ERRORS_RETURN; with MPI's
 * default handler the job aborts. Calls block like any MPI collective: a rank that dies
 * is noticed by the launcher (mpirun ends the job) or by a watchdog of the caller's.
 * On failure the calling thread's tg_last_error() says why in one line ("dist_sum: rank 2
 * has n = 3, ..."), and err/errsize (may be NULL/0) receive the same message.
 */

/* Replaces each rank's gradients by sum_r weight_r * grad_r over the ranks of comm (in
   rank order, in double, rounded once), identical on every rank. Parameters whose grad is
   NULL are skipped (they must be NULL on every rank). Traffic per rank is about twice the
   gradient size whatever the number of ranks: rank r sums slice r of every rank's
   gradient (MPI_Alltoallv), then the slices are shared (MPI_Allgatherv); memory: two
   gradient-sized buffers. With one rank the gradient is multiplied by weight.
   Returns TG_ERR_NULL (NULL ps on some rank), TG_ERR_ARG (a weight not finite; comm not
   an intracommunicator), TG_ERR_SHAPE (layouts differ between ranks), TG_ERR_NOMEM,
   TG_ERR_IO (MPI failure); gradients unchanged on every error but TG_ERR_IO. */
tg_status tg_dist_average_grads(tg_params *ps, MPI_Comm comm, double weight, char *err,
                                size_t errsize);

/* The most values tg_dist_average_grads_sum carries. */
#define TG_DIST_MAX_VALUES 8

/* tg_dist_average_grads, and in the same exchange (no extra round trip) values[0..n)
   become, on every rank, the sum over ranks in rank order of each rank's values, as
   tg_dist_sum does: typically the global loss from each rank's weight * loss, and flags
   every rank must agree on. 0 <= n <= TG_DIST_MAX_VALUES, the same on every rank; values
   may be NULL when n is 0. Errors as tg_dist_average_grads (TG_ERR_ARG also for n out of
   range or differing, TG_ERR_NULL for NULL values); values unchanged on error. */
tg_status tg_dist_average_grads_sum(tg_params *ps, MPI_Comm comm, double weight,
                                    double *values, int n, char *err, size_t errsize);

/* Copies root's parameter values (not gradients) to every other rank of comm: call it once
   after building the model so that all ranks start from the same point whatever their
   initialisation. Returns TG_ERR_NULL, TG_ERR_ARG (bad root), TG_ERR_SHAPE (layouts
   differ), TG_ERR_NOMEM, TG_ERR_IO; values unchanged on every error but TG_ERR_IO. */
tg_status tg_dist_broadcast_params(tg_params *ps, MPI_Comm comm, int root, char *err,
                                   size_t errsize);

/* Checks that every rank holds bit-identical parameter values (a CRC-32 of each rank's
   values compared with rank 0's): cheap insurance that the replicas did not drift.
   Returns TG_OK when they agree, TG_ERR_ARG naming the first rank that differs,
   TG_ERR_SHAPE (layouts differ), TG_ERR_NULL, TG_ERR_IO. */
tg_status tg_dist_check_params(tg_params *ps, MPI_Comm comm, char *err, size_t errsize);

/* values[0..n) becomes, on every rank, the sum over ranks 0..N-1 of each rank's
   values[0..n), added in rank order (bit-identical everywhere; e.g. the global loss from
   each rank's weight_r * loss_r). n must be the same on every rank.
   Returns TG_ERR_NULL (values NULL with n > 0), TG_ERR_ARG (n negative or differing
   between ranks), TG_ERR_NOMEM, TG_ERR_IO; values unchanged on error but TG_ERR_IO. */
tg_status tg_dist_sum(double *values, int n, MPI_Comm comm, char *err, size_t errsize);

#ifdef __cplusplus
}
#endif
#endif /* TG_OPTIM_DIST_H */
