/* File and path helpers: bounded reads, atomic writes, and access confined to a root.
 *
 * Paths that come from images, layers, volumes or requests must only be resolved through
 * ck_open_in_root()/ck_openat2(), never by joining strings and calling open(). */
#pragma once

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Reads a whole file of at most max bytes into a malloc'd, NUL-terminated buffer.
 * -EFBIG when the file is larger than max. dirfd may be AT_FDCWD. */
int ck_read_file_at(int dirfd, const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                    struct ck_error **reterr);
static inline int ck_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len,
                               struct ck_error **reterr)
{
        return ck_read_file_at(-100 /* AT_FDCWD */, path, max, ret, ret_len, reterr);
}

/* Reads until EOF or max bytes from fd. */
int ck_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_len);
/* write() all of buf, retrying on EINTR and short writes. */
int ck_write_all(int fd, const void *buf, size_t len);
/* pwrite() all of buf at off, retrying on EINTR and short writes (-EIO if nothing is written). */
int ck_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* Writes data to dirfd/name (name is one path component) through a temporary file, fsync, rename: readers
 * see the old or the new content, never a partial one. */
int ck_write_file_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         struct ck_error **reterr);
/* The same without the fsync: readers (and a process that crashes midway) still see the old or
 * the new content, but a power loss may lose both. For files that cannot outlive a reboot anyway
 * (under /run) or that are regenerated before every use (an OCI bundle). */
int ck_write_file_replace(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                          struct ck_error **reterr);

/* mkdir -p; existing directories are fine. */
int ck_mkdir_p(const char *path, mode_t mode);
/* opendir() of dirfd/path ("." for dirfd itself) with a new open file description: O_CLOEXEC,
 * and its own offset, unlike fdopendir(dup(fd)), whose fd leaks into children forked meanwhile
 * and whose offset is shared with every other dup of fd. NULL with errno set on failure; the
 * caller closedir()s it. */
DIR *ck_opendir_at(int dirfd, const char *path);
/* rm -rf below dirfd/name, never crossing into another mount and never following symlinks. */
int ck_rm_rf_at(int dirfd, const char *name);

/* openat2() with the given resolve flags (RESOLVE_*). */
int ck_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve);
/* Opens path inside the tree rooted at rootfd: ".." and absolute symlinks cannot leave it
 * (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS). O_CLOEXEC is always added. */
int ck_open_in_root(int rootfd, const char *path, int flags, mode_t mode);
