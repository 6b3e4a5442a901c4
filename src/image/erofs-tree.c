/* The EROFS layer writer's front half: tar members (as read by libarchive) become a tree in
 * memory, and regular file data is written to the image as it streams (see erofs-internal.h
 * for the layout).
 *
 * The rules are those of the directory unpacker (unpack-entry.c), so that a layer means the same
 * whichever format stores it: names are normalised and ".." components rejected; parent
 * directories are resolved in the layer root, following symlinks of this layer with ".." clamped
 * at the root (what openat2(RESOLVE_IN_ROOT) does), and missing ones are created 0755 (with the
 * group and the set-group-ID bit of a set-group-ID parent, as mkdir() gives them); the last
 * component is never followed; a later member replaces an earlier one (a directory over a
 * directory merges attributes); hard-link targets are resolved the same way and must exist and not
 * be directories; ".wh.<name>" becomes an overlay whiteout (char 0/0) unless this layer has
 * <name>; ".wh..wh..opq" marks the parent with trusted.overlay.opaque=y; only security.capability
 * and user.* (not user.overlay.*) xattrs are kept.
 * Nothing here touches the host file system but the image fd. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-internal.h"
#include "fs.h"
#include "hugebuf.h"
#include "log.h"
#include "parse.h"
#include "store-internal.h"

#define MAX_SYMLINKS 40

/* Small items (names, dentries, nodes, inline tails: ~11,000 of each in a large layer) come
 * from chunks of a pull's reusable buffers (hugebuf.h) rather than one calloc() each: malloc's
 * headers and fresh heap pages were a third of a pull's page faults. The first chunk is small
 * (the probe writes an empty image); later ones are 2 MiB. */
#define CHUNK_FIRST (256u << 10)
#define CHUNK_SIZE  (2u << 20)
#define CHUNK_ITEM  (CHUNK_SIZE / 8) /* larger items are allocated on their own */
#define ITEM_ALIGN  16u

static void *chunk_alloc(struct erofs_writer *w, size_t size)
{
        void *p;

        size = (size + ITEM_ALIGN - 1) & ~(size_t)(ITEM_ALIGN - 1);
        if (size > w->bump_left) {
                size_t len = w->n_chunks ? CHUNK_SIZE : CHUNK_FIRST;
                uint8_t *c;

                if (w->n_chunks == w->cap_chunks) {
                        size_t ncap = w->cap_chunks ? 2 * w->cap_chunks : 16;
                        struct erofs_chunk *nc = reallocarray(w->chunks, ncap, sizeof(*nc));
                        if (!nc)
                                return NULL;
                        w->chunks = nc;
                        w->cap_chunks = ncap;
                }
                c = image_hugebuf_alloc(len);
                if (!c)
                        return NULL;
                w->chunks[w->n_chunks++] = (struct erofs_chunk){.p = c, .len = len};
                w->bump = c;
                w->bump_left = len;
        }
        p = w->bump;
        w->bump += size;
        w->bump_left -= size;
        return memset(p, 0, size); /* a reused chunk holds its last user's bytes */
}

void *erofs_alloc(struct erofs_writer *w, size_t size)
{
        void *p;

        /* Names, symlink targets, xattrs and tails of a hostile layer could otherwise take
         * entries cap x name cap bytes. */
        if (size > EROFS_MEMORY_MAX - w->memory) {
                w->over_memory = true;
                return NULL;
        }
        w->memory += size;
        if (!IMAGE_HUGEBUF_CHECKED && size <= CHUNK_ITEM) /* hugebuf.h: ASan sees each item */
                return chunk_alloc(w, size ? size : 1);
        if (w->n_arena == w->cap_arena) {
                size_t ncap = w->cap_arena ? 2 * w->cap_arena : 1024;
                void **na = reallocarray(w->arena, ncap, sizeof(*na));
                if (!na)
                        return NULL;
                w->arena = na;
                w->cap_arena = ncap;
        }
        p = calloc(1, size ? size : 1);
        if (p)
                w->arena[w->n_arena++] = p;
        return p;
}

static char *arena_memdup(struct erofs_writer *w, const void *src, size_t len)
{
        char *p = erofs_alloc(w, len + 1);

        if (p && len)
                memcpy(p, src, len);
        return p;
}

/* ---- the sequential data writer ----------------------------------------------------------- */

/* The data area goes through the sequential O_DIRECT writer (seqwrite.h): straight from an
 * aligned buffer to the disk, no page-cache copy; what it cannot take directly it writes
 * buffered. */
int erofs_data_flush(struct erofs_writer *w)
{
        return image_seqw_finish(&w->out);
}

int erofs_data_write(struct erofs_writer *w, uint64_t pos, const uint8_t *data, size_t len)
{
        return image_seqw_write(&w->out, pos, data, len);
}

/* ---- the tree --------------------------------------------------------------------------- */

static size_t hash_of(const struct erofs_dentry *parent, const char *name, size_t len)
{
        uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)parent;

        for (size_t i = 0; i < len; i++)
                h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
        return (size_t)(h ^ (h >> 29));
}

static int hash_grow(struct erofs_writer *w)
{
        size_t nsize = w->hash_size ? 2 * w->hash_size : 4096;
        struct erofs_dentry **nh = calloc(nsize, sizeof(*nh));

        if (!nh)
                return -ENOMEM;
        for (size_t i = 0; i < w->hash_size; i++)
                for (struct erofs_dentry *d = w->hash[i], *next; d; d = next) {
                        size_t b = hash_of(d->parent, d->name, d->name_len) & (nsize - 1);
                        next = d->hnext;
                        d->hnext = nh[b];
                        nh[b] = d;
                }
        free(w->hash);
        w->hash = nh;
        w->hash_size = nsize;
        return 0;
}

static struct erofs_dentry *child_lookup(struct erofs_writer *w, struct erofs_dentry *parent,
                                         const char *name, size_t len)
{
        size_t b = hash_of(parent, name, len) & (w->hash_size - 1);

        for (struct erofs_dentry *d = w->hash[b]; d; d = d->hnext)
                if (d->parent == parent && d->name_len == len && memcmp(d->name, name, len) == 0)
                        return d;
        return NULL;
}

/* Detaches d (and so its subtree) from its parent; the memory stays in the arena. */
static void child_remove(struct erofs_writer *w, struct erofs_dentry *d)
{
        struct erofs_dentry *p = d->parent;
        size_t b = hash_of(p, d->name, d->name_len) & (w->hash_size - 1);

        for (struct erofs_dentry **pp = &w->hash[b]; *pp; pp = &(*pp)->hnext)
                if (*pp == d) {
                        *pp = d->hnext;
                        w->hash_count--;
                        break;
                }
        p->children[d->index] = p->children[--p->n_children];
        p->children[d->index]->index = d->index;
}

static int child_add(struct erofs_writer *w, struct erofs_dentry *parent, const char *name, size_t len,
                     struct erofs_node *node, struct erofs_dentry **ret)
{
        struct erofs_dentry *d;
        size_t b;

        if (w->hash_count >= w->hash_size / 2 && hash_grow(w) < 0)
                return -ENOMEM;
        if (parent->n_children == parent->cap_children) {
                size_t ncap = parent->cap_children ? 2 * parent->cap_children : 8;
                struct erofs_dentry **nc = reallocarray(parent->children, ncap, sizeof(*nc));
                if (!nc)
                        return -ENOMEM;
                parent->children = nc;
                parent->cap_children = ncap;
        }
        d = erofs_alloc(w, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->name = arena_memdup(w, name, len);
        if (!d->name)
                return -ENOMEM;
        d->name_len = (uint16_t)len;
        d->parent = parent;
        d->node = node;
        d->anext = w->all;
        w->all = d;
        if (S_ISDIR(node->mode))
                node->dir = d;
        d->index = parent->n_children;
        parent->children[parent->n_children++] = d;
        b = hash_of(parent, name, len) & (w->hash_size - 1);
        d->hnext = w->hash[b];
        w->hash[b] = d;
        w->hash_count++;
        *ret = d;
        return 0;
}

static struct erofs_node *node_new(struct erofs_writer *w, uint32_t mode, uint32_t uid, uint32_t gid)
{
        struct erofs_node *n = erofs_alloc(w, sizeof(*n));

        if (!n)
                return NULL;
        n->mode = mode;
        n->uid = uid;
        n->gid = gid;
        n->implicit_time = true;
        return n;
}

int erofs_writer_init(struct erofs_writer *w, int fd, const struct image_limits *lim)
{
        struct erofs_node *rn;

        *w = (struct erofs_writer){.fd = fd, .lim = lim, .data_blocks = 1};
        if (image_seqw_init(&w->out, fd, EROFS_BLKSZ) < 0 || hash_grow(w) < 0)
                return -ENOMEM;
        rn = node_new(w, S_IFDIR | 0755, 0, 0);
        w->root = erofs_alloc(w, sizeof(*w->root));
        if (!rn || !w->root)
                return -ENOMEM;
        w->root->name = arena_memdup(w, "", 0);
        if (!w->root->name)
                return -ENOMEM;
        w->root->parent = w->root;
        w->all = w->root;
        w->root->node = rn;
        rn->dir = w->root;
        return 0;
}

void erofs_writer_clear(struct erofs_writer *w)
{
        for (struct erofs_dentry *d = w->all; d; d = d->anext)
                free(d->children);
        free(w->hash);
        image_seqw_clear(&w->out);
        for (size_t i = w->n_arena; i > 0; i--)
                free(w->arena[i - 1]);
        free(w->arena);
        for (size_t i = 0; i < w->n_chunks; i++)
                image_hugebuf_free(w->chunks[i].p, w->chunks[i].len);
        free(w->chunks);
        *w = (struct erofs_writer){.fd = -1};
}

/* ---- resolution in the layer root -------------------------------------------------------- */

/* Walks path (len bytes, "/"-separated, "." and ".." allowed: it may be a symlink target) from
 * start, following symlinks of this layer in every component but the last unless follow_last,
 * with ".." stopping at the root. With create, missing components become directories (only
 * for the member's own path, never inside a symlink target). */
static int walk(struct erofs_writer *w, struct erofs_dentry *start, const char *path, size_t len,
                bool create, bool follow_last, unsigned *hops, struct erofs_dentry **ret)
{
        struct erofs_dentry *cur = start;
        const char *p = path, *end = path + len;

        while (p < end) {
                const char *slash = memchr(p, '/', (size_t)(end - p));
                size_t clen = slash ? (size_t)(slash - p) : (size_t)(end - p);
                bool last = !slash || slash + 1 >= end;
                struct erofs_dentry *child;
                int r;

                if (clen == 0 || (clen == 1 && p[0] == '.')) {
                        p += clen + 1;
                        continue;
                }
                if (clen == 2 && p[0] == '.' && p[1] == '.') {
                        cur = cur->parent;
                        p += clen + 1;
                        continue;
                }
                if (clen > NAME_MAX)
                        return -ENAMETOOLONG;
                child = child_lookup(w, cur, p, clen);
                if (!child) {
                        struct erofs_node *n;
                        if (!create)
                                return -ENOENT;
                        /* As mkdir() in a set-group-ID directory: the group and the bit go down. */
                        if (cur->node->mode & S_ISGID)
                                n = node_new(w, S_IFDIR | S_ISGID | 0755, 0, cur->node->gid);
                        else
                                n = node_new(w, S_IFDIR | 0755, 0, 0);
                        if (!n)
                                return -ENOMEM;
                        r = child_add(w, cur, p, clen, n, &child);
                        if (r < 0)
                                return r;
                } else if (S_ISLNK(child->node->mode) && (!last || follow_last)) {
                        struct erofs_dentry *target;
                        const char *t = (const char *)child->node->tail;
                        if (++*hops > MAX_SYMLINKS)
                                return -ELOOP;
                        r = walk(w, t[0] == '/' ? w->root : cur, t, child->node->tail_len, false, true, hops,
                                 &target);
                        if (r < 0)
                                return r;
                        child = target;
                }
                if (!last && !S_ISDIR(child->node->mode))
                        return -ENOTDIR;
                cur = child;
                p += clen + 1;
        }
        *ret = cur;
        return 0;
}

static int parent_dir(struct erofs_writer *w, const char *parent, struct erofs_dentry **ret)
{
        struct erofs_dentry *d;
        unsigned hops = 0;
        int r = walk(w, w->root, parent, strlen(parent), true, true, &hops, &d);

        if (r < 0)
                return r;
        if (!S_ISDIR(d->node->mode))
                return -ENOTDIR;
        *ret = d;
        return 0;
}

/* ---- attributes ---------------------------------------------------------------------------- */

static int xattr_set(struct erofs_writer *w, struct erofs_node *n, uint8_t index, const char *name,
                     const void *value, size_t value_len)
{
        size_t name_len = strlen(name);
        struct erofs_xattr *x;

        if (name_len == 0 || name_len > 255 || value_len > UINT16_MAX)
                return -EINVAL;
        for (x = n->xattrs; x; x = x->next)
                if (x->index == index && x->name_len == name_len && memcmp(x->name, name, name_len) == 0)
                        break;
        if (!x) {
                x = erofs_alloc(w, sizeof(*x));
                if (!x)
                        return -ENOMEM;
                x->index = index;
                x->name_len = (uint8_t)name_len;
                x->name = arena_memdup(w, name, name_len);
                if (!x->name)
                        return -ENOMEM;
                x->next = n->xattrs;
                n->xattrs = x;
        }
        x->value = (uint8_t *)arena_memdup(w, value, value_len);
        if (!x->value)
                return -ENOMEM;
        x->value_len = (uint16_t)value_len;
        n->xattr_size = erofs_xattr_body_size(n->xattrs);
        if (n->xattr_size > EROFS_XATTR_MAX)
                return -E2BIG;
        return 0;
}

/* The allow-list of unpack-entry.c, mapped to EROFS name prefixes. */
static int apply_xattrs(struct erofs_writer *w, struct erofs_node *n, struct archive_entry *e)
{
        const char *name;
        const void *value;
        size_t size;
        int r;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                if (!name || !unpack_xattr_allowed(name)) {
                        log_debug("layer: dropping xattr %.100s", name ? name : "(null)");
                        continue;
                }
                if (strcmp(name, "security.capability") == 0)
                        r = xattr_set(w, n, EROFS_XATTR_SECURITY, "capability", value, size);
                else
                        r = xattr_set(w, n, EROFS_XATTR_USER, name + strlen("user."), value, size);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void entry_attrs(struct erofs_writer *w, struct erofs_node *n, struct archive_entry *e)
{
        long ns = archive_entry_mtime_nsec(e);

        n->implicit_time = false;
        n->mtime = archive_entry_mtime(e);
        n->mtime_nsec = ns >= 0 && ns < 1000000000 ? (uint32_t)ns : 0;
        if (!w->have_build_time) {
                /* Inodes with this mtime can be compact (32 bytes): a layer's files often share one. */
                w->build_time = n->mtime;
                w->build_nsec = n->mtime_nsec;
                w->have_build_time = true;
        }
}

static uint32_t encode_dev(unsigned major, unsigned minor)
{
        return (minor & 0xffu) | ((major & 0xfffu) << 8) | ((minor & ~0xffu) << 12);
}

/* ---- members ----------------------------------------------------------------------------- */

/* Removes what is at parent/name so a new member can take its place; keeps a directory when
 * the new member is one too. Returns 1 when a directory was kept. */
static int replace_existing(struct erofs_writer *w, struct erofs_dentry *parent, const char *name,
                            bool keep_dir, struct erofs_dentry **ret_kept)
{
        struct erofs_dentry *d = child_lookup(w, parent, name, strlen(name));

        if (!d)
                return 0;
        if (keep_dir && S_ISDIR(d->node->mode)) {
                *ret_kept = d;
                return 1;
        }
        child_remove(w, d);
        return 0;
}

static int add_file(struct erofs_writer *w, struct archive *a, struct archive_entry *e, struct erofs_node *n)
{
        uint64_t size = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
        uint64_t tail = size % EROFS_BLKSZ, full = size - tail, start;
        const void *buf;
        size_t len;
        la_int64_t offset;
        int r;

        n->size = size;
        /* The tail goes inline when inode, xattrs and tail fit one block (always so for small
         * files, which then cost no data block at all), within the layer's memory budget. */
        if (tail && EROFS_ISIZE_BIG + n->xattr_size + tail <= EROFS_BLKSZ &&
            w->inline_bytes + tail <= EROFS_INLINE_BUDGET) {
                n->tail = erofs_alloc(w, (size_t)tail);
                if (!n->tail)
                        return -ENOMEM;
                n->tail_len = (size_t)tail;
                w->inline_bytes += tail;
        } else {
                n->plain = true;
                full = size;
        }
        start = w->data_blocks;
        if (full) {
                uint64_t blocks = (full + EROFS_BLKSZ - 1) >> EROFS_BLKBITS;
                if (start + blocks > UINT32_MAX)
                        return -EFBIG;
                n->blkaddr = (uint32_t)start;
                w->data_blocks += blocks;
        }
        for (;;) {
                r = archive_read_data_block(a, &buf, &len, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK)
                        return -EIO;
                if (offset < 0 || (uint64_t)offset > size || len > size - (uint64_t)offset)
                        return -EINVAL; /* data past the member's size */
                const uint8_t *p = buf;
                uint64_t off = (uint64_t)offset;
                if (off < full) {
                        size_t k = (size_t)(full - off < len ? full - off : len);
                        r = erofs_data_write(w, (start << EROFS_BLKBITS) + off, p, k);
                        if (r < 0)
                                return r;
                        p += k;
                        off += k;
                        len -= k;
                }
                if (len)
                        memcpy(n->tail + (off - full), p, len);
        }
        return 0;
}

static int add_symlink(struct erofs_writer *w, struct archive_entry *e, struct erofs_node *n)
{
        const char *target = archive_entry_symlink(e);
        size_t len;
        int r;

        if (!target)
                target = archive_entry_symlink_utf8(e);
        if (!target || !*target || (len = strlen(target)) >= PATH_MAX)
                return -EINVAL;
        n->size = len;
        n->tail = (uint8_t *)arena_memdup(w, target, len);
        if (!n->tail)
                return -ENOMEM;
        n->tail_len = len;
        if (EROFS_ISIZE_BIG + len > EROFS_BLKSZ) { /* too long to sit next to its inode */
                n->plain = true;
                n->blkaddr = (uint32_t)w->data_blocks++;
                r = erofs_data_write(w, (uint64_t)n->blkaddr << EROFS_BLKBITS, n->tail, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_hardlink(struct erofs_writer *w, struct archive_entry *e, struct erofs_dentry *parent,
                        const char *base)
{
        _cleanup_free_ char *target = NULL;
        struct erofs_dentry *tp, *t, *cur, *d;
        const char *raw = archive_entry_hardlink(e), *slash, *tbase;
        unsigned hops = 0;
        int r;

        if (!raw)
                raw = archive_entry_hardlink_utf8(e);
        if (!raw)
                return -EINVAL;
        r = unpack_path_normalise(raw, w->lim->max_name_len, &target);
        if (r != 0)
                return r < 0 ? r : -EINVAL;
        slash = strrchr(target, '/');
        tbase = slash ? slash + 1 : target;
        r = walk(w, w->root, target, slash ? (size_t)(slash - target) : 0, false, true, &hops, &tp);
        if (r < 0)
                return r;
        if (!S_ISDIR(tp->node->mode))
                return -ENOTDIR;
        t = child_lookup(w, tp, tbase, strlen(tbase));
        if (!t)
                return -ENOENT;
        if (S_ISDIR(t->node->mode))
                return -EPERM;
        cur = child_lookup(w, parent, base, strlen(base));
        if (cur && cur->node == t->node)
                return 0;
        /* A directory this link replaces takes what is under it along, the target too: the
         * directory format removes it before its link(), as containerd does. */
        if (cur && S_ISDIR(cur->node->mode))
                for (struct erofs_dentry *p = tp;; p = p->parent) {
                        if (p == cur)
                                return -ENOENT;
                        if (p == w->root)
                                break;
                }
        if (cur)
                child_remove(w, cur);
        return child_add(w, parent, base, strlen(base), t->node, &d);
}

static int add_whiteout(struct erofs_writer *w, struct erofs_dentry *parent, const char *victim,
                        uint32_t uid, uint32_t gid)
{
        struct erofs_node *n;
        struct erofs_dentry *d;

        if (child_lookup(w, parent, victim, strlen(victim)))
                return 0; /* a member of this layer wins */
        n = node_new(w, S_IFCHR, uid, gid);
        if (!n)
                return -ENOMEM;
        return child_add(w, parent, victim, strlen(victim), n, &d);
}

static int entry_owner(struct archive_entry *e, uint32_t *uid, uint32_t *gid)
{
        int64_t u = archive_entry_uid(e), g = archive_entry_gid(e);

        if (u < 0 || g < 0 || u >= (int64_t)UINT32_MAX || g >= (int64_t)UINT32_MAX)
                return -EINVAL;
        *uid = (uint32_t)u;
        *gid = (uint32_t)g;
        return 0;
}

static int entry_apply(struct erofs_writer *w, struct archive *a, struct archive_entry *e, const char *path,
                       struct ck_error **reterr)
{
        _cleanup_free_ char *parent_path = NULL;
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *victim = NULL;
        mode_t type = archive_entry_filetype(e);
        struct erofs_dentry *parent, *d = NULL;
        struct erofs_node *n;
        char sb[200];
        uint32_t uid, gid;
        int r;

        if (entry_owner(e, &uid, &gid) < 0)
                return ck_error_set(reterr, -EINVAL, "%s: invalid owner", unpack_shown(path, sb));
        parent_path = strndup(path, slash ? (size_t)(slash - path) : 0);
        if (!parent_path)
                return ck_error_set(reterr, -ENOMEM, "out of memory");

        switch (unpack_whiteout_classify(base, &victim)) {
        case UNPACK_WHITEOUT_OPAQUE:
                r = parent_dir(w, parent_path, &parent);
                if (r >= 0)
                        r = xattr_set(w, parent->node, EROFS_XATTR_TRUSTED, "overlay.opaque", "y", 1);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot mark directory opaque",
                                              unpack_shown(path, sb));
                return 0;
        case UNPACK_WHITEOUT_META:
                log_debug("layer: ignoring whiteout metadata %s", unpack_shown(path, sb));
                return 0;
        case UNPACK_WHITEOUT_INVALID:
                return ck_error_set(reterr, -EINVAL, "%s: invalid whiteout name", unpack_shown(path, sb));
        case UNPACK_WHITEOUT_FILE:
                r = parent_dir(w, parent_path, &parent);
                if (r >= 0)
                        r = add_whiteout(w, parent, victim, uid, gid);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot create whiteout",
                                              unpack_shown(path, sb));
                return 0;
        case UNPACK_NOT_WHITEOUT:
                break;
        }

        r = parent_dir(w, parent_path, &parent);
        if (r < 0)
                return ck_error_errno(reterr, r, "%s: cannot open parent directory", unpack_shown(path, sb));

        if (archive_entry_hardlink(e) || archive_entry_hardlink_utf8(e)) {
                r = add_hardlink(w, e, parent, base);
                if (r < 0)
                        return ck_error_errno(reterr, r, "%s: cannot create hard link",
                                              unpack_shown(path, sb));
                return 0;
        }
        if (type == AE_IFSOCK) {
                log_debug("layer: skipping socket %s", unpack_shown(path, sb));
                return 0;
        }
        if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && type != AE_IFCHR &&
            type != AE_IFBLK && type != AE_IFIFO)
                return ck_error_set(reterr, -EINVAL, "%s: unsupported entry type 0%o",
                                    unpack_shown(path, sb), (unsigned)type);

        if (replace_existing(w, parent, base, type == AE_IFDIR, &d) > 0) {
                /* a directory over a directory: the attributes merge, the children stay */
                n = d->node;
                n->mode = S_IFDIR | (archive_entry_perm(e) & 07777);
                n->uid = uid;
                n->gid = gid;
                entry_attrs(w, n, e);
                r = apply_xattrs(w, n, e);
                goto out;
        }
        n = node_new(w, (uint32_t)type | (archive_entry_perm(e) & 07777), uid, gid);
        if (!n)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        entry_attrs(w, n, e);
        switch (type) {
        case AE_IFREG:
                r = apply_xattrs(w, n, e);
                if (r >= 0)
                        r = add_file(w, a, e, n);
                break;
        case AE_IFDIR:
                r = apply_xattrs(w, n, e);
                break;
        case AE_IFLNK:
                n->mode = S_IFLNK | 0777;
                r = add_symlink(w, e, n);
                break;
        default:
                if (type == AE_IFCHR || type == AE_IFBLK)
                        n->rdev = encode_dev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
                r = 0;
                break;
        }
        if (r >= 0)
                r = child_add(w, parent, base, strlen(base), n, &d);
out:
        if (r < 0)
                return ck_error_errno(reterr, r, "%s: cannot create", unpack_shown(path, sb));
        return 0;
}

int erofs_writer_entry(struct erofs_writer *w, struct archive *a, struct archive_entry *e,
                       struct ck_error **reterr)
{
        _cleanup_free_ char *path = NULL;
        int r;

        r = unpack_member_admit(e, w->lim, &w->entries, &path, reterr);
        if (r < 0)
                return r;
        if (r > 0)
                return 0; /* "./": the layer root keeps its own attributes */
        r = entry_apply(w, a, e, path, reterr);
        if (r < 0 && w->over_memory) {
                ck_error_free(reterr ? *reterr : NULL);
                if (reterr)
                        *reterr = NULL;
                return ck_error_set(reterr, -E2BIG, "layer metadata is over the limit of %" PRIu64 " MiB",
                                    EROFS_MEMORY_MAX >> 20);
        }
        return r;
}
