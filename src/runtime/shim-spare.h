/* One conker-shim started ahead of the next container start (a "spare"), so that a start hands
 * it its command line instead of paying conkerd's fork and the shim's exec and dynamic linking.
 * The message and what the spare does with it: shim-proto.h. */
#pragma once

#include <sys/types.h>

struct shim_spare;

/* Starts the thread that keeps one spare of shim_path ready (the first is started at once).
 * runtime_copy: crun's path, which each spare copies into a sealed memfd ahead (conker-shim's
 * runtime_copy_sealed()), or NULL. */
int shim_spare_new(const char *shim_path, const char *runtime_copy, struct shim_spare **ret);
/* Stops the thread and closes the spare's socket: an unused spare sees EOF and exits. */
void shim_spare_free(struct shim_spare *sp);

/* Hands the spare argv[0..n-1] (a shim's command line without argv[0]) and its log fd (copied).
 * Returns the socket on which the shim answers like on a --ready-fd (the caller closes it), with
 * the shim's process group in *ret_pgid, or -EAGAIN when no live spare is ready (the caller starts
 * a shim itself). Either way a new spare is started after shim_spare_refill(). */
int shim_spare_assign(struct shim_spare *sp, char *const *argv, size_t n, int logfd, pid_t *ret_pgid);
/* Asks for the next spare; called once the start that used (or missed) one is done. */
void shim_spare_refill(struct shim_spare *sp);
