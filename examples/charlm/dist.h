/* examples/charlm/dist.h: 'charlm train' across MPI ranks (data parallel; built with MPI=1). */
#ifndef CHARLM_DIST_H
#define CHARLM_DIST_H

#include "examples/charlm/charlm.h"

/*
 * Rank r of N trains rows [r*B/N, (r+1)*B/N) of the global batch of B streams. After
 * backward, dist_step combines the gradients with tg_dist_average_grads (weight rows/B,
 * fixed rank order) and the losses the same way, so every rank clips and steps
 * identically. Rank 0 alone prints, logs, validates and writes checkpoints; the carried
 * hidden state of every row is gathered to it for a checkpoint, which therefore resumes
 * on any number of ranks. Stopping (signals, --time-limit) is agreed at each step, and
 * any rank's error ends the whole job (MPI_Abort) instead of leaving the others waiting.
 * A watchdog (CHARLM_DIST_TIMEOUT seconds, default 600, 0: off) ends a rank that waits
 * longer than that for the others.
 *
 * Built without MPI, every function below acts for a single process: rank 0 of 1, all
 * rows, no exchange, dist_start and dist_end do nothing. The training loop calls them
 * unconditionally.
 */

/* Starts MPI for 'charlm train' (errors returned, not fatal) and adapts o: ranks other than
   0 are quiet, write no log or plot and print nothing on stdout; without --threads each
   rank gets the cores of its host divided by the ranks on that host; with --resume, rank 0
   reads the checkpoint and sends it to the others, which resume from a private copy
   (removed by dist_end), so that only rank 0's host needs the file.
   Returns EXIT_OK or EXIT_RUNTIME (message printed). */
int dist_start(int *argc, char ***argv, charlm_opts *o);

/* Ends MPI and returns rc. The ranks first agree that all of them got here (on a
   communicator of their own); a failed rank (rc not EXIT_OK or EXIT_INTERRUPTED) whose
   peers do not arrive within 5 s, being blocked in an exchange it left, aborts the job
   after a message instead. */
int dist_end(int rc);

/* This process's rank and the number of ranks (0 and 1 before dist_start). */
int dist_rank(void);
int dist_size(void);

/* Splits the global batch B over the ranks (every rank needs a row) and prints the plan
   unless quiet. Returns EXIT_OK or EXIT_USAGE (message printed by rank 0). */
int dist_set_batch(int64_t B, bool quiet);
/* This rank's first row and number of rows (after dist_set_batch). */
int64_t dist_first_row(void);
int64_t dist_rows(void);

/* The signal handler for SIGINT/SIGTERM while training: it only records the signal,
   which dist_step then hands to every rank at once (and restores the default action, so
   a second signal ends the process). */
void dist_on_signal(int sig);

/* The dropout RNG of this step: rng itself on one rank; with several, one derived from
   (seed, step, rank), so that the masks of a run do not depend on when it was resumed. */
tg_rng *dist_dropout_rng(tg_rng *rng, uint64_t seed, int64_t step);

/* After backward: replaces the gradients by the weighted combination over the ranks and
   *loss (this rank's mean loss over its rows) by the global mean; *sig receives the
   signal any rank got (SIGINT before SIGTERM, 0: none) and *time_up_all rank 0's
   time_up. One call of tg_dist_average_grads_sum carries it all.
   Returns EXIT_OK or EXIT_RUNTIME (message printed). */
int dist_step(tg_params *ps, double *loss, bool time_up, int *sig, bool *time_up_all);

/* For a checkpoint: checks that the ranks' parameters are bit-identical and gathers every
   rank's rows of the carried state into out[k] for each state tensor k < st->nstate
   (layers x B x H floats each) on rank 0 (other ranks' out is not written). Returns
   EXIT_OK or EXIT_RUNTIME (message printed). */
int dist_gather_state(tg_params *ps, const tg_stack_state *st, int64_t B, int hidden,
                      float *const *out);

#endif /* CHARLM_DIST_H */
