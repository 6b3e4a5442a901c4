/* The EROFS layer writer: a tar layer turned into one read-only EROFS image, written in a
 * single sequential pass (erofs-tree.c builds the tree from the tar members and streams file
 * data; erofs-format.c lays out and encodes the metadata at the end).
 *
 * Image layout (block size 4 KiB, no compression, no shared xattrs):
 *
 *   block 0            zeros, and the superblock at byte 1024 (written last)
 *   blocks 1..D-1      file data, in tar order, each file starting on a block; a file's last
 *                      partial block ("tail") is kept in memory and stored inline after its
 *                      inode when it fits (FLAT_INLINE), else padded to a block (FLAT_PLAIN)
 *   blocks D..M-1      directory blocks that do not fit inline
 *   blocks M..         the metadata area (meta_blkaddr = M): inodes, inline xattrs, inline
 *                      tails, root first (nid 1: the superblock has 16 bits for it)
 *
 * A tar stream is not ordered by directory, so the tree (names, attributes, tails) is kept in
 * memory until the end; its size is bounded by the entry cap, the name cap and the inline
 * budget. Internal to the image module. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "seqwrite.h"
#include "store.h"

#define EROFS_BLKBITS       12
#define EROFS_BLKSZ         (1u << EROFS_BLKBITS)
#define EROFS_SB_OFFSET     1024
#define EROFS_MAGIC         0xE0F5E1E2u
#define EROFS_ISIZE_SMALL   32                    /* compact inode */
#define EROFS_ISIZE_BIG     64                    /* extended inode */
#define EROFS_XATTR_MAX     (60u << 10)           /* inline xattr bytes per inode we accept */
#define EROFS_INLINE_BUDGET (UINT64_C(256) << 20) /* tails kept in memory, whole layer */
#define EROFS_MEMORY_MAX    (UINT64_C(768) << 20) /* the whole tree in memory, whole layer */

/* xattr name prefixes (e_name_index) */
#define EROFS_XATTR_USER     1
#define EROFS_XATTR_TRUSTED  4
#define EROFS_XATTR_SECURITY 6

struct erofs_xattr {
        uint8_t index;
        uint8_t name_len;
        uint16_t value_len;
        char *name; /* after the prefix, not NUL-terminated on disk */
        uint8_t *value;
        struct erofs_xattr *next;
};

struct erofs_dentry;

struct erofs_node {
        uint32_t mode; /* type and permission bits */
        uint32_t uid, gid;
        int64_t mtime;
        uint32_t mtime_nsec;
        uint64_t size;
        uint32_t rdev;    /* encoded as the kernel's new_encode_dev() */
        uint32_t blkaddr; /* first block of the data that is not inline */
        uint8_t *tail;    /* inline data (file tail, symlink target, directory tail) */
        size_t tail_len;
        bool plain; /* the whole data is in blocks (FLAT_PLAIN) */
        struct erofs_xattr *xattrs;
        size_t xattr_size;        /* on-disk inline xattr body, 0 when none */
        struct erofs_dentry *dir; /* a directory's own entry (its children) */
        /* filled in at layout */
        uint32_t nlink;
        uint32_t ino;
        uint64_t nid;
        bool seen;
        bool implicit_time; /* a directory no member described: gets the build time */
};

struct erofs_dentry {
        char *name; /* one component; "" for the root */
        uint16_t name_len;
        struct erofs_dentry *parent;
        struct erofs_node *node;
        struct erofs_dentry **children; /* directories only, unsorted until layout */
        size_t n_children, cap_children;
        size_t index;               /* position in parent->children */
        struct erofs_dentry *hnext; /* hash chain: (parent, name) */
        struct erofs_dentry *anext; /* every dentry, for freeing children arrays */
};

struct erofs_chunk {
        uint8_t *p;
        size_t len;
};

struct erofs_writer {
        int fd;
        const struct image_limits *lim;
        struct erofs_dentry *root;
        struct erofs_dentry *all;
        uint64_t entries;
        /* (parent, name) -> dentry */
        struct erofs_dentry **hash;
        size_t hash_size, hash_count;
        /* everything allocated, freed at the end (replaced members stay until then): small
         * items are cut from chunks (hugebuf.h), large ones are allocated on their own */
        void **arena;
        size_t n_arena, cap_arena;
        struct erofs_chunk *chunks;
        size_t n_chunks, cap_chunks;
        uint8_t *bump; /* the free rest of the last chunk */
        size_t bump_left;
        uint64_t inline_bytes;
        uint64_t memory; /* bytes allocated for the tree; past EROFS_MEMORY_MAX the layer fails */
        bool over_memory;
        /* sequential data writer */
        uint64_t data_blocks;  /* next free block of the data area */
        struct image_seqw out; /* the data area, O_DIRECT where the file system takes it */
        int64_t build_time;
        uint32_t build_nsec;
        bool have_build_time;
};

/* erofs-tree.c */
int erofs_writer_init(struct erofs_writer *w, int fd, const struct image_limits *lim);
void erofs_writer_clear(struct erofs_writer *w);
void *erofs_alloc(struct erofs_writer *w, size_t size);
int erofs_data_write(struct erofs_writer *w, uint64_t pos, const uint8_t *data, size_t len);
int erofs_data_flush(struct erofs_writer *w);

struct archive;
struct archive_entry;
/* Adds the member the current header of `a` describes (reading its data from `a`). */
int erofs_writer_entry(struct erofs_writer *w, struct archive *a, struct archive_entry *e,
                       struct ck_error **reterr);

/* erofs-format.c: lays out and writes directories, inodes and the superblock. */
int erofs_format_finish(struct erofs_writer *w, struct ck_error **reterr);
/* The on-disk xattr body size for a list (0 for none). */
size_t erofs_xattr_body_size(const struct erofs_xattr *x);
/* Writes a small valid image holding an empty root directory (the support probe). */
int erofs_write_empty(int fd);
