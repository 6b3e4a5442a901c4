/* Running helper programs (runc, ip, nft, mkfs.ext4) without a shell.
 *
 * The program is found on PATH before the fork, the child gets a fixed argv, /dev/null or a pipe
 * as stdin, and pipes for stdout and stderr whose contents are returned (each capped). A network
 * namespace fd may be given: the child joins it before exec (how `ip` is run inside a container's
 * namespace that lives outside /run/netns). Never pass secrets in argv. */
#pragma once

#include <stddef.h>

#include "error.h"

struct ck_exec_opts {
        const void *stdin_data; /* written to the child's stdin, then closed; NULL for /dev/null */
        size_t stdin_len;
        int netns_fd;       /* >= 0: setns(CLONE_NEWNET) in the child; use -1 (or ck_exec_opts_default) */
        size_t out_max;     /* cap on each captured stream; 0 = 64 KiB */
        unsigned timeout_s; /* 0 = 60; the child is killed after it */
};

#define CK_EXEC_OPTS_DEFAULT ((struct ck_exec_opts){.netns_fd = -1})

/* Runs argv[0] (PATH lookup when it has no '/') and waits. Returns 0 when it exited 0; otherwise
 * -EIO with an error "<argv[0]> <argv[1]>: exited N: <first stderr line(s)>". ret_out/ret_err
 * (each optional, malloc'd, NUL-terminated) are set in both cases when the program ran. */
int ck_exec(char *const argv[], const struct ck_exec_opts *opts, char **ret_out, char **ret_err,
            struct ck_error **reterr);

/* Resolves a program name on PATH into a malloc'd absolute path; -ENOENT when not found. */
int ck_exec_find(const char *name, char **ret);
