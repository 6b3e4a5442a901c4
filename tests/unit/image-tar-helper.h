/* Test helper: builds small tar (optionally gzip'd) streams in memory with libarchive's writer,
 * for the image store and unpacker tests. Header-only, included by those tests. */
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "parse.h"

struct tar_member {
        const char *path;
        mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFBLK, AE_IFIFO; 0 = AE_IFREG */
        mode_t perm;
        int uid, gid;
        const char *data;     /* regular files */
        const char *link;     /* symlink target */
        const char *hardlink; /* hard-link target */
        const char *xattr_name, *xattr_value;
        size_t xattr_len; /* 0 = strlen(xattr_value) */
        long mtime;
        size_t zeros;                  /* a regular file of this many zero bytes (data ignored) */
        size_t sparse_size;            /* a sparse file of this size: a hole, then data at its end */
        unsigned dev_major, dev_minor; /* AE_IFCHR, AE_IFBLK */
};

/* Writes members as a pax tar into a malloc'd buffer. compress: 0 none, 1 gzip, 2 zstd. */
static inline uint8_t *tar_build(const struct tar_member *m, size_t n, int compress, size_t *ret_len)
{
        size_t cap = 1 << 20, used = 0;
        for (size_t i = 0; i < n; i++)
                cap += m[i].zeros + (m[i].data ? strlen(m[i].data) : 0) + 4096;
        uint8_t *buf = malloc(cap);
        struct archive *a = archive_write_new();

        archive_write_set_format_pax_restricted(a);
        if (compress == 1)
                archive_write_add_filter_gzip(a);
        else if (compress == 2 && archive_write_add_filter_zstd(a) != ARCHIVE_OK)
                abort();
        archive_write_set_bytes_in_last_block(a, 1);
        if (archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK)
                abort();
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                mode_t type = m[i].type ? m[i].type : AE_IFREG;
                size_t len = m[i].zeros ? m[i].zeros : (m[i].data ? strlen(m[i].data) : 0);

                archive_entry_set_pathname(e, m[i].path);
                archive_entry_set_uid(e, m[i].uid);
                archive_entry_set_gid(e, m[i].gid);
                archive_entry_set_mtime(e, m[i].mtime ? m[i].mtime : 1700000000, 0);
                if (m[i].hardlink) {
                        archive_entry_set_hardlink(e, m[i].hardlink);
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, m[i].perm ? m[i].perm : 0644);
                        archive_entry_set_size(e, 0);
                } else {
                        archive_entry_set_filetype(e, type);
                        archive_entry_set_perm(e, m[i].perm ? m[i].perm : (type == AE_IFDIR ? 0755 : 0644));
                        if (type == AE_IFLNK)
                                archive_entry_set_symlink(e, m[i].link);
                        if (type == AE_IFCHR || type == AE_IFBLK) {
                                archive_entry_set_rdevmajor(e, m[i].dev_major);
                                archive_entry_set_rdevminor(e, m[i].dev_minor);
                        }
                        if (type == AE_IFREG && m[i].sparse_size) {
                                archive_entry_set_size(e, (la_int64_t)m[i].sparse_size);
                                archive_entry_sparse_add_entry(e, (la_int64_t)(m[i].sparse_size - len),
                                                               (la_int64_t)len);
                        } else if (type == AE_IFREG) {
                                archive_entry_set_size(e, (la_int64_t)len);
                        }
                }
                if (m[i].xattr_name)
                        archive_entry_xattr_add_entry(e, m[i].xattr_name, m[i].xattr_value,
                                                      m[i].xattr_len ? m[i].xattr_len
                                                                     : strlen(m[i].xattr_value));
                if (archive_write_header(a, e) != ARCHIVE_OK)
                        abort();
                if (type == AE_IFREG && !m[i].hardlink && len) {
                        if (m[i].zeros) {
                                static const uint8_t z[65536];
                                for (size_t done = 0; done < len;) {
                                        size_t k = len - done < sizeof(z) ? len - done : sizeof(z);
                                        archive_write_data(a, z, k);
                                        done += k;
                                }
                        } else {
                                archive_write_data(a, m[i].data, len);
                        }
                }
                archive_entry_free(e);
        }
        archive_write_close(a);
        archive_write_free(a);
        *ret_len = used;
        return buf;
}

/* "sha256:<hex>" of buf into out[72]. */
static inline void tar_digest(const uint8_t *buf, size_t len, char out[72])
{
        uint8_t h[32];

        SHA256(buf, len, h);
        memcpy(out, "sha256:", 7);
        ck_hex_encode(h, 32, out + 7);
}
