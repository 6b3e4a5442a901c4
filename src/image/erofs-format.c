/* The EROFS layer writer's back half: once the tar stream ended, lays out the tree built by
 * erofs-tree.c and writes directories, inodes and the superblock (on-disk format: the kernel's
 * fs/erofs/erofs_fs.h; layout: erofs-internal.h).
 *
 * Order: every reachable inode is numbered breadth first from the root (so the root comes first, nid 1
 * and directories sit near their children); directories are sorted by name as the kernel's
 * binary-search lookup requires, including "." and ".."; an inode is compact (32 bytes) when
 * its owner, link count, size and mtime fit the compact form (the mtime must equal the
 * superblock's build time, which is what kernels before the compact-mtime feature assume),
 * extended (64 bytes) otherwise. An inode with inline data never crosses a block boundary. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "erofs-internal.h"
#include "fs.h"

#define LAYOUT_PLAIN  0
#define LAYOUT_INLINE 2
#define DIRENT_SIZE   12
#define NULL_BLKADDR  0xffffffffu

struct dir_ent {
        const char *name;
        uint16_t len;
        struct erofs_node *node;
};

struct dir_info {
        struct erofs_dentry *d;
        struct dir_ent *ents;
        size_t n;
};

static void put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
        put16(p, (uint16_t)v);
        put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
        put32(p, (uint32_t)v);
        put32(p + 4, (uint32_t)(v >> 32));
}

static size_t round_up(size_t v, size_t a)
{
        return (v + a - 1) / a * a;
}

size_t erofs_xattr_body_size(const struct erofs_xattr *x)
{
        size_t n = 0;

        if (!x)
                return 0;
        n = 12; /* struct erofs_xattr_ibody_header */
        for (; x; x = x->next)
                n += round_up(4 + (size_t)x->name_len + x->value_len, 4);
        return n;
}

static int ent_cmp(const void *pa, const void *pb)
{
        const struct dir_ent *a = pa, *b = pb;
        int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);

        if (c)
                return c;
        return (int)a->len - (int)b->len;
}

static uint8_t file_type(uint32_t mode)
{
        switch (mode & S_IFMT) {
        case S_IFREG:
                return 1;
        case S_IFDIR:
                return 2;
        case S_IFCHR:
                return 3;
        case S_IFBLK:
                return 4;
        case S_IFIFO:
                return 5;
        case S_IFSOCK:
                return 6;
        case S_IFLNK:
                return 7;
        default:
                return 0;
        }
}

/* Packs a directory's sorted entries into blocks; with out, encodes them (nids known).
 * Returns the directory size. */
static uint64_t dir_pack(const struct dir_info *di, uint8_t *out, uint64_t out_len)
{
        uint64_t size = 0;
        size_t i = 0;

        while (i < di->n) {
                size_t used = 0, j = i;
                while (j < di->n && used + DIRENT_SIZE + di->ents[j].len <= EROFS_BLKSZ)
                        used += DIRENT_SIZE + di->ents[j++].len;
                if (out && size + used <= out_len) {
                        uint8_t *blk = out + size;
                        size_t nameoff = DIRENT_SIZE * (j - i);
                        for (size_t k = i; k < j; k++) {
                                uint8_t *de = blk + DIRENT_SIZE * (k - i);
                                put64(de, di->ents[k].node->nid);
                                put16(de + 8, (uint16_t)nameoff);
                                de[10] = file_type(di->ents[k].node->mode);
                                de[11] = 0;
                                memcpy(blk + nameoff, di->ents[k].name, di->ents[k].len);
                                nameoff += di->ents[k].len;
                        }
                }
                i = j;
                size += j < di->n ? EROFS_BLKSZ : used;
        }
        return size;
}

static bool node_compact(const struct erofs_writer *w, const struct erofs_node *n)
{
        return n->uid <= UINT16_MAX && n->gid <= UINT16_MAX && n->nlink <= UINT16_MAX &&
               n->size <= UINT32_MAX && n->mtime == w->build_time && n->mtime_nsec == w->build_nsec;
}

static size_t node_isize(const struct erofs_writer *w, const struct erofs_node *n)
{
        return node_compact(w, n) ? EROFS_ISIZE_SMALL : EROFS_ISIZE_BIG;
}

static void encode_xattrs(const struct erofs_node *n, uint8_t *p)
{
        memset(p, 0, 12); /* no name filter (the feature is off), no shared xattrs */
        p += 12;
        for (const struct erofs_xattr *x = n->xattrs; x; x = x->next) {
                p[0] = x->name_len;
                p[1] = x->index;
                put16(p + 2, x->value_len);
                memcpy(p + 4, x->name, x->name_len);
                memcpy(p + 4 + x->name_len, x->value, x->value_len);
                p += round_up(4 + (size_t)x->name_len + x->value_len, 4);
        }
}

static void encode_inode(const struct erofs_writer *w, const struct erofs_node *n, uint8_t *p)
{
        bool compact = node_compact(w, n);
        uint16_t layout = n->tail_len && !n->plain ? LAYOUT_INLINE : LAYOUT_PLAIN;
        uint16_t icount = n->xattr_size ? (uint16_t)((n->xattr_size - 12) / 4 + 1) : 0;
        uint32_t iu;

        if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
                iu = n->rdev;
        else if (S_ISREG(n->mode) || S_ISDIR(n->mode) || S_ISLNK(n->mode))
                iu = n->size >= EROFS_BLKSZ || n->plain ? n->blkaddr : NULL_BLKADDR;
        else
                iu = 0;
        put16(p, (uint16_t)((compact ? 0 : 1) | (layout << 1)));
        put16(p + 2, icount);
        put16(p + 4, (uint16_t)n->mode);
        put32(p + 16, iu);
        put32(p + 20, n->ino);
        if (compact) {
                put16(p + 6, (uint16_t)n->nlink);
                put32(p + 8, (uint32_t)n->size);
                put16(p + 24, (uint16_t)n->uid);
                put16(p + 26, (uint16_t)n->gid);
        } else {
                put64(p + 8, n->size);
                put32(p + 24, n->uid);
                put32(p + 28, n->gid);
                put64(p + 32, (uint64_t)n->mtime);
                put32(p + 40, n->mtime_nsec);
                put32(p + 44, n->nlink);
        }
        if (n->xattr_size)
                encode_xattrs(n, p + (compact ? EROFS_ISIZE_SMALL : EROFS_ISIZE_BIG));
}

static int push(void **v, size_t *n, size_t *cap, size_t elem, const void *item)
{
        if (*n == *cap) {
                size_t ncap = *cap ? 2 * *cap : 256;
                void *nv = reallocarray(*v, ncap, elem);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = ncap;
        }
        memcpy((uint8_t *)*v + *n * elem, item, elem);
        (*n)++;
        return 0;
}

/* Numbers the reachable inodes breadth first and builds each directory's sorted entries. */
static int collect(struct erofs_writer *w, struct erofs_node ***ret_nodes, size_t *ret_n,
                   struct dir_info **ret_dirs, size_t *ret_ndirs)
{
        struct erofs_node **nodes = NULL;
        struct dir_info *dirs = NULL;
        size_t n = 0, cap = 0, nd = 0, capd = 0;
        struct erofs_node *root = w->root->node;
        struct dir_info rdi = {.d = w->root};
        int r;

        root->seen = true;
        root->nlink = 2;
        r = push((void **)&nodes, &n, &cap, sizeof(*nodes), &root);
        if (r >= 0)
                r = push((void **)&dirs, &nd, &capd, sizeof(*dirs), &rdi);
        for (size_t i = 0; r >= 0 && i < nd; i++) {
                struct erofs_dentry *d = dirs[i].d;
                struct dir_ent *ents = calloc(d->n_children + 2, sizeof(*ents));
                if (!ents) {
                        r = -ENOMEM;
                        break;
                }
                dirs[i].ents = ents;
                dirs[i].n = d->n_children + 2;
                ents[0] = (struct dir_ent){".", 1, d->node};
                ents[1] = (struct dir_ent){"..", 2, d->parent->node};
                for (size_t k = 0; r >= 0 && k < d->n_children; k++) {
                        struct erofs_dentry *c = d->children[k];
                        struct erofs_node *cn = c->node;
                        ents[k + 2] = (struct dir_ent){c->name, c->name_len, cn};
                        if (S_ISDIR(cn->mode)) {
                                struct dir_info cdi = {.d = c};
                                d->node->nlink++;
                                cn->nlink = 2;
                                cn->seen = true;
                                r = push((void **)&nodes, &n, &cap, sizeof(*nodes), &cn);
                                if (r >= 0)
                                        r = push((void **)&dirs, &nd, &capd, sizeof(*dirs), &cdi);
                        } else if (!cn->seen) {
                                cn->seen = true;
                                cn->nlink = 1;
                                r = push((void **)&nodes, &n, &cap, sizeof(*nodes), &cn);
                        } else {
                                cn->nlink++;
                        }
                }
                qsort(ents, dirs[i].n, sizeof(*ents), ent_cmp);
        }
        if (r < 0) {
                for (size_t i = 0; i < nd; i++)
                        free(dirs[i].ents);
                free(dirs);
                free(nodes);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                nodes[i]->ino = (uint32_t)(i + 1);
        *ret_nodes = nodes;
        *ret_n = n;
        *ret_dirs = dirs;
        *ret_ndirs = nd;
        return 0;
}

/* Sizes a directory and places the part of it that does not go inline. */
static void dir_place(struct erofs_writer *w, struct dir_info *di)
{
        struct erofs_node *n = di->d->node;
        uint64_t size = dir_pack(di, NULL, 0), tail = size % EROFS_BLKSZ;

        n->size = size;
        n->tail_len = (size_t)tail;
        n->plain = !tail || node_isize(w, n) + n->xattr_size + tail > EROFS_BLKSZ;
        if (size - (n->plain ? 0 : tail)) {
                n->blkaddr = (uint32_t)w->data_blocks;
                w->data_blocks += (size + (n->plain ? EROFS_BLKSZ - 1 : 0)) >> EROFS_BLKBITS;
        }
}

/* Encodes a directory: whole blocks to the data area, the tail into n->tail (inline). */
static int dir_write(struct erofs_writer *w, struct dir_info *di)
{
        struct erofs_node *n = di->d->node;
        uint64_t alloc = round_up(n->size, EROFS_BLKSZ);
        _cleanup_free_ uint8_t *buf = calloc(1, alloc);
        uint64_t blocks_len = n->plain ? alloc : n->size - n->tail_len;
        int r;

        if (!buf)
                return -ENOMEM;
        dir_pack(di, buf, alloc);
        if (blocks_len) {
                r = erofs_data_write(w, (uint64_t)n->blkaddr << EROFS_BLKBITS, buf, blocks_len);
                if (r < 0)
                        return r;
        }
        if (!n->plain) {
                n->tail = erofs_alloc(w, n->tail_len);
                if (!n->tail)
                        return -ENOMEM;
                memcpy(n->tail, buf + blocks_len, n->tail_len);
        }
        return 0;
}

static int write_superblock(struct erofs_writer *w, uint64_t inos, uint32_t meta_blkaddr, uint32_t blocks)
{
        uint8_t sb[128] = {0};

        put32(sb, EROFS_MAGIC);
        sb[12] = EROFS_BLKBITS;
        put16(sb + 14, (uint16_t)w->root->node->nid);
        put64(sb + 16, inos);
        put64(sb + 24, (uint64_t)w->build_time);
        put32(sb + 32, w->build_nsec);
        put32(sb + 36, blocks);
        put32(sb + 40, meta_blkaddr);
        memcpy(sb + 64, "conker-layer", 12);
        return ck_pwrite_all(w->fd, sb, sizeof(sb), EROFS_SB_OFFSET);
}

int erofs_format_finish(struct erofs_writer *w, struct ck_error **reterr)
{
        _cleanup_free_ struct erofs_node **nodes = NULL;
        _cleanup_free_ uint8_t *scratch = NULL;
        struct dir_info *dirs = NULL;
        size_t n = 0, nd = 0;
        uint64_t pos = 32, meta_len, meta_blkaddr, blocks;
        int r;

        /* Directories the layer did not list (the root, missing parents) take the build time. */
        for (struct erofs_dentry *d = w->all; d; d = d->anext)
                if (d->node->implicit_time) {
                        d->node->mtime = w->build_time;
                        d->node->mtime_nsec = w->build_nsec;
                }
        r = collect(w, &nodes, &n, &dirs, &nd);
        if (r < 0)
                return ck_error_set(reterr, r, "out of memory");
        for (size_t i = 0; i < nd; i++)
                dir_place(w, &dirs[i]);

        /* Inode placement: 32-byte slots; inline data stays in the inode's block. The first slot
         * stays empty: a nid is the inode number, and readdir() hides entries with inode 0. */
        for (size_t i = 0; i < n; i++) {
                struct erofs_node *x = nodes[i];
                size_t rec = node_isize(w, x) + x->xattr_size + (x->plain ? 0 : x->tail_len);
                pos = round_up(pos, 32);
                if (rec <= EROFS_BLKSZ && pos % EROFS_BLKSZ + rec > EROFS_BLKSZ)
                        pos = round_up(pos, EROFS_BLKSZ);
                x->nid = pos / 32;
                pos += rec;
        }
        /* With every nid known, the directories can be encoded. */
        for (size_t i = 0; r >= 0 && i < nd; i++)
                r = dir_write(w, &dirs[i]);
        for (size_t i = 0; i < nd; i++)
                free(dirs[i].ents);
        free(dirs);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot write the layer image");
        meta_blkaddr = w->data_blocks;
        meta_len = round_up(pos, EROFS_BLKSZ);
        blocks = meta_blkaddr + meta_len / EROFS_BLKSZ;
        if (blocks > UINT32_MAX)
                return ck_error_set(reterr, -EFBIG, "layer image too large");
        /* The metadata area follows the data, through the same direct writer, record by
         * record in nid order (placement above only moves forward): the writer zero-fills the
         * gaps and pads the last block, so the area is never assembled in a buffer of its own
         * (tens of MiB of fresh pages and one more copy of every inline tail). */
        scratch = malloc(EROFS_ISIZE_BIG + EROFS_XATTR_MAX);
        if (!scratch)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct erofs_node *x = nodes[i];
                uint64_t at = (meta_blkaddr << EROFS_BLKBITS) + x->nid * 32;
                size_t head = node_isize(w, x) + x->xattr_size;

                memset(scratch, 0, head);
                encode_inode(w, x, scratch);
                r = erofs_data_write(w, at, scratch, head);
                if (r >= 0 && !x->plain && x->tail_len)
                        r = erofs_data_write(w, at + head, x->tail, x->tail_len);
        }
        /* Then the superblock, the one write behind it. */
        if (r >= 0)
                r = erofs_data_flush(w);
        if (r >= 0)
                r = write_superblock(w, n, (uint32_t)meta_blkaddr, (uint32_t)blocks);
        if (r >= 0 && ftruncate(w->fd, (off_t)(blocks << EROFS_BLKBITS)) < 0)
                r = -errno;
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot write the layer image");
        return 0;
}

int erofs_write_empty(int fd)
{
        struct erofs_writer w;
        struct image_limits lim;
        int r;

        image_limits_default(&lim);
        r = erofs_writer_init(&w, fd, &lim);
        if (r >= 0)
                r = erofs_format_finish(&w, NULL);
        erofs_writer_clear(&w);
        return r;
}
