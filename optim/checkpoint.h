/* optim/checkpoint.h: one versioned, checksummed, atomically written file holding
   parameters, optimizer state and caller metadata. */
#ifndef TG_OPTIM_CHECKPOINT_H
#define TG_OPTIM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "autograd/params.h"
#include "optim/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * File format (all integers little-endian, fixed width; floats as IEEE bit patterns):
 * magic "TAPEGRAD", u32 version, then sections (params, optimizer, metadata), then a
 * CRC-32 of everything before it. No timestamps, no paths: the same state always
 * writes the same bytes. Writing goes to "<path>.tmp", is fsync'ed and renamed over
 * path, so a crash mid-save leaves the previous file intact.
 *
 * On failure the calling thread's tg_last_error() says why in one line, naming the file,
 * e.g. "checkpoint.bin: truncated at byte 812 (expected 4096 bytes)"; err/errsize (may be
 * NULL/0) receive the same message (and "" on success).
 */

/* Saves ps, opt (may be NULL: no optimizer state; else it must have been made over ps)
   and meta (meta_size bytes, at most 1 GiB, may be 0). The file holds the parameter
   values (not the gradients), the optimizer's kind, config (lr included), step count and
   state buffers, and the metadata bytes verbatim.
   Returns TG_ERR_NULL, TG_ERR_ARG (opt not made over ps, its lr set to a negative or
   non-finite value, metadata over 1 GiB),
   TG_ERR_NOMEM, TG_ERR_IO (cannot write; the previous file is untouched and the temporary
   file removed; the message carries the system's reason). */
tg_status tg_checkpoint_save(const char *path, tg_params *ps, const tg_optim *opt,
                             const void *meta, size_t meta_size, char *err, size_t errsize);

/* Reads only the metadata, after validating the whole file (so a program can rebuild
   its model from it before calling tg_checkpoint_load). *meta is malloc'ed (caller
   frees; NULL when meta_size is 0). Returns TG_ERR_IO, TG_ERR_FORMAT, TG_ERR_NOMEM. */
tg_status tg_checkpoint_read_meta(const char *path, void **meta, size_t *meta_size,
                                  char *err, size_t errsize);

/* Loads values into ps (whose names, dtypes and shapes must match the file's exactly)
   and, when opt is not NULL, the optimizer state (kind must match; its config, lr and
   step count are restored). Nothing is modified unless the whole file is valid.
   Returns TG_ERR_IO, TG_ERR_FORMAT (corrupt, truncated, extended, other version),
   TG_ERR_SHAPE (model mismatch: parameter count, names or shapes), TG_ERR_DTYPE (f32 file,
   f64 model or the reverse), TG_ERR_ARG (opt not made over ps, file without optimizer
   state while opt is given, other optimizer kind), TG_ERR_NULL, TG_ERR_NOMEM. */
tg_status tg_checkpoint_load(const char *path, tg_params *ps, tg_optim *opt,
                             char *err, size_t errsize);

#ifdef __cplusplus
}
#endif
#endif /* TG_OPTIM_CHECKPOINT_H */
