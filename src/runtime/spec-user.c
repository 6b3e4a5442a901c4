/* The user a container runs as: "user|uid[:group|gid]" resolved against the rootfs's /etc/passwd
 * and /etc/group, read through ck_open_in_root() (regular files only, size-capped), never with the
 * host's NSS. The parser walks private copies of untrusted files (fuzz-spec-userdb drives it). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "parse.h"
#include "spec.h"

static int parse_id(const char *s, size_t len, uint32_t *ret)
{
        uint64_t v;
        int r = ck_parse_u64(s, len, INT32_MAX, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t)v;
        return 0;
}

/* Reads an /etc file of the rootfs: regular file, capped. Missing file → *ret = NULL. */
static int read_userdb(int rootfd, const char *path, char **ret, struct ck_error **reterr)
{
        _cleanup_close_ int fd = ck_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
        uint8_t *data = NULL;
        struct stat st;
        size_t len;
        int r;

        if (fd == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (fd < 0)
                return ck_error_errno(reterr, fd, "cannot open %s in the rootfs", path);
        if (fstat(fd, &st) < 0)
                return ck_error_errno(reterr, -errno, "stat %s", path);
        if (!S_ISREG(st.st_mode))
                return ck_error_set(reterr, -EINVAL, "%s in the rootfs is not a regular file", path);
        r = ck_read_fd(fd, SPEC_USERDB_MAX, &data, &len);
        if (r == -EFBIG)
                return ck_error_set(reterr, r, "%s in the rootfs is larger than %u bytes", path,
                                    SPEC_USERDB_MAX);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read %s", path);
        if (memchr(data, 0, len)) {
                free(data);
                return ck_error_set(reterr, -EINVAL, "%s in the rootfs contains NUL bytes", path);
        }
        *ret = (char *)data;
        return 0;
}

/* Splits line into at most max ':'-separated fields (in place). Returns the count. */
static size_t split_fields(char *line, char **f, size_t max)
{
        size_t n = 0;
        f[n++] = line;
        for (char *c = line; *c && n < max; c++)
                if (*c == ':') {
                        *c = 0;
                        f[n++] = c + 1;
                }
        return n;
}

/* Walks the lines of a passwd/group file; cb returns > 0 to stop. */
static int for_each_line(char *db, int (*cb)(char **f, size_t n, void *ud), size_t nfields, void *ud)
{
        char *line = db;
        while (line && *line) {
                char *nl = strchr(line, '\n');
                char *f[8];
                size_t n;
                int r;

                if (nl)
                        *nl = 0;
                if (*line && *line != '#') {
                        n = split_fields(line, f, nfields);
                        r = cb(f, n, ud);
                        if (r != 0)
                                return r;
                }
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

struct pw_query {
        const char *name; /* or NULL */
        uint32_t uid;     /* when name is NULL */
        bool found;
        char user[256];
        uint32_t out_uid, out_gid;
        char home[256];
};

static int pw_cb(char **f, size_t n, void *ud)
{
        struct pw_query *q = ud;
        uint32_t uid, gid;

        if (n < 7 || parse_id(f[2], strlen(f[2]), &uid) < 0 || parse_id(f[3], strlen(f[3]), &gid) < 0)
                return 0;
        if (q->name ? strcmp(f[0], q->name) != 0 : uid != q->uid)
                return 0;
        q->found = true;
        q->out_uid = uid;
        q->out_gid = gid;
        snprintf(q->user, sizeof(q->user), "%s", f[0]);
        snprintf(q->home, sizeof(q->home), "%s", f[5]);
        return 1;
}

struct gr_query {
        const char *name; /* group to find by name, or NULL */
        bool found;
        uint32_t gid;
        const char *member; /* collect groups listing this user */
        struct spec_user *u;
};

static void add_gid(struct spec_user *u, uint32_t gid)
{
        for (size_t i = 0; i < u->n_gids; i++)
                if (u->gids[i] == gid)
                        return;
        if (u->n_gids < SPEC_GROUPS_MAX)
                u->gids[u->n_gids++] = gid;
}

static int gr_cb(char **f, size_t n, void *ud)
{
        struct gr_query *q = ud;
        uint32_t gid;

        if (n < 4 || parse_id(f[2], strlen(f[2]), &gid) < 0)
                return 0;
        if (q->name && !q->found && strcmp(f[0], q->name) == 0) {
                q->found = true;
                q->gid = gid;
        }
        if (q->member && *f[3]) {
                const char *m = f[3];
                size_t ml = strlen(q->member);
                while (*m) {
                        size_t l = strcspn(m, ",");
                        if (l == ml && strncmp(m, q->member, l) == 0)
                                add_gid(q->u, gid);
                        m += l;
                        if (*m == ',')
                                m++;
                }
        }
        return 0;
}

static bool all_digits(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

int spec_user_resolve(int rootfd, const char *user, struct spec_user *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        int r;

        r = read_userdb(rootfd, "/etc/passwd", &passwd, reterr);
        if (r < 0)
                return r;
        r = read_userdb(rootfd, "/etc/group", &group, reterr);
        if (r < 0)
                return r;
        return spec_user_resolve_db(passwd, passwd ? strlen(passwd) : 0, group, group ? strlen(group) : 0,
                                    user, ret, reterr);
}

int spec_user_resolve_db(const char *passwd_buf, size_t passwd_len, const char *group_buf, size_t group_len,
                         const char *user, struct spec_user *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        struct spec_user u = {.home = "/"};
        struct pw_query pq = {0};
        const char *colon, *ustr = user ? user : "";
        _cleanup_free_ char *uname = NULL;
        const char *gname = NULL;
        int r;

        if (strlen(ustr) > 512 || !ck_is_printable(ustr, strlen(ustr)))
                return ck_error_set(reterr, -EINVAL, "invalid User");
        colon = strchr(ustr, ':');
        uname = strndup(ustr, colon ? (size_t)(colon - ustr) : strlen(ustr));
        if (!uname)
                return -ENOMEM;
        if (colon)
                gname = colon + 1;
        if (colon && !*gname)
                return ck_error_set(reterr, -EINVAL, "invalid User \"%s\": empty group", ustr);
        if (!*uname && colon)
                return ck_error_set(reterr, -EINVAL, "invalid User \"%s\": empty user", ustr);

        /* Private NUL-terminated copies: the line walker splits them in place. */
        if (passwd_buf && (passwd_len > SPEC_USERDB_MAX || memchr(passwd_buf, 0, passwd_len)))
                return ck_error_set(reterr, -EINVAL, "invalid /etc/passwd in the rootfs");
        if (group_buf && (group_len > SPEC_USERDB_MAX || memchr(group_buf, 0, group_len)))
                return ck_error_set(reterr, -EINVAL, "invalid /etc/group in the rootfs");
        if ((passwd_buf && !(passwd = strndup(passwd_buf, passwd_len))) ||
            (group_buf && !(group = strndup(group_buf, group_len))))
                return -ENOMEM;

        if (!*uname) {
                pq.uid = 0;
        } else if (all_digits(uname, strlen(uname))) {
                r = parse_id(uname, strlen(uname), &pq.uid);
                if (r < 0)
                        return ck_error_set(reterr, -EINVAL, "invalid uid \"%s\"", uname);
        } else {
                pq.name = uname;
        }
        if (passwd)
                for_each_line(passwd, pw_cb, 7, &pq);
        if (pq.found) {
                u.uid = pq.out_uid;
                u.gid = pq.out_gid;
                snprintf(u.home, sizeof(u.home), "%s", pq.home[0] ? pq.home : "/");
        } else if (pq.name) {
                return ck_error_set(reterr, -ENOENT,
                                    "unable to find user %s: no matching entries in passwd file", pq.name);
        } else {
                u.uid = pq.uid;
                u.gid = 0;
        }

        if (gname) {
                if (all_digits(gname, strlen(gname))) {
                        r = parse_id(gname, strlen(gname), &u.gid);
                        if (r < 0)
                                return ck_error_set(reterr, -EINVAL, "invalid gid \"%s\"", gname);
                } else {
                        struct gr_query gq = {.name = gname, .u = &u};
                        _cleanup_free_ char *g2 = group ? strdup(group) : NULL;
                        if (group && !g2)
                                return -ENOMEM;
                        if (g2)
                                for_each_line(g2, gr_cb, 4, &gq);
                        if (!gq.found)
                                return ck_error_set(
                                        reterr, -ENOENT,
                                        "unable to find group %s: no matching entries in group file", gname);
                        u.gid = gq.gid;
                }
        }
        /* The primary gid is always an additional gid too (CVE-2023-25173). */
        add_gid(&u, u.gid);
        if (pq.found && group) {
                struct gr_query gq = {.member = pq.user, .u = &u};
                for_each_line(group, gr_cb, 4, &gq);
        }
        *ret = u;
        return 0;
}
