/* Starting a conker-shim detached from conkerd: used for a container's shim (runtime-start.c) and for
 * the spare (shim-spare.c). */
#pragma once

#include <sys/types.h>

/* fork → setsid → fork → exec of argv[0] (path) with /dev/null on stdin, out_fd (or /dev/null
 * when -1) on stdout and stderr, fd3 on fd 3, in "/", with an empty signal mask. The shim is in
 * its own session and process group and is nobody's child in conkerd, so nothing aimed at
 * conkerd (kill -9 of its process group, ^C) reaches it. Waits for the intermediate process
 * only. Returns the shim's process group (the intermediate's pid, which the kernel does not give
 * out again while the shim or anything in its group lives), or -errno (the exec's own failure
 * shows as fd3's other end closing). */
pid_t shim_exec_detached(char *const *argv, int out_fd, int fd3);
