/* The compiled seccomp filter, kept per profile for crun (contract in seccomp-cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "json.h"
#include "parse.h"
#include "seccomp-cache.h"
#include "ssl.h"

#define FILTER_INSN_BYTES 8u    /* struct sock_filter */
#define FILTER_MAX_INSNS  4096u /* BPF_MAXINSNS */

bool seccomp_cache_filter_valid(size_t len)
{
        return len > 0 && len % FILTER_INSN_BYTES == 0 && len <= FILTER_INSN_BYTES * FILTER_MAX_INSNS;
}

int seccomp_cache_key(const json_t *cfg, const char *runtime_version, char key[65])
{
        const json_t *profile = json_object_get(json_object_get(cfg, "linux"), "seccomp");
        _cleanup_free_ char *txt = NULL, *both = NULL;
        uint8_t md[32];
        int n;

        if (!profile)
                return -ENOENT;
        txt = json_dumps(profile, JSON_COMPACT | JSON_SORT_KEYS);
        if (!txt)
                return -ENOMEM;
        n = asprintf(&both, "%s\n%s", runtime_version ? runtime_version : "", txt);
        if (n < 0) {
                both = NULL;
                return -ENOMEM;
        }
        if (ck_sha256(both, (size_t)n, md) < 0)
                return -EIO;
        ck_hex_encode(md, sizeof(md), key);
        return 0;
}

/* A filter file, never through a symlink, at most the largest filter plus one byte (so that a
 * longer file reads as too long rather than truncated). */
static int read_filter(int dfd, const char *name, uint8_t **ret, size_t *ret_len, struct ck_error **reterr)
{
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        int r;

        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", name);
        r = ck_read_fd(fd, FILTER_INSN_BYTES * FILTER_MAX_INSNS + 1, ret, ret_len);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read %s", name);
        return 0;
}

static int open_dir(const char *dir, struct ck_error **reterr)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", dir);
        return fd;
}

int seccomp_cache_annotate(const char *dir, const char *key, json_t *cfg, struct ck_error **reterr)
{
        _cleanup_close_ int dfd = -1;
        _cleanup_free_ uint8_t *bpf = NULL;
        _cleanup_free_ char *b64 = NULL;
        char name[80];
        size_t len = 0;
        json_t *ann;
        int r;

        dfd = open_dir(dir, NULL);
        if (dfd < 0)
                return 0;
        snprintf(name, sizeof(name), "%s.bpf", key);
        r = read_filter(dfd, name, &bpf, &len, NULL);
        if (r < 0 || !seccomp_cache_filter_valid(len))
                return 0;
        b64 = malloc(4 * ((len + 2) / 3) + 1);
        if (!b64)
                return -ENOMEM;
        EVP_EncodeBlock((unsigned char *)b64, bpf, (int)len);
        ann = json_object_get(cfg, "annotations");
        if (!ann) {
                ann = json_object();
                if (!ann || json_object_set_new(cfg, "annotations", ann) < 0)
                        return ck_error_set(reterr, -ENOMEM, "out of memory");
        }
        if (json_object_set_new(ann, SECCOMP_CACHE_ANNOTATION, json_string(b64)) < 0)
                return ck_error_set(reterr, -ENOMEM, "out of memory");
        return 1;
}

int seccomp_cache_store(const char *dir, const char *key, const char *runtime_root, const char *id,
                        struct ck_error **reterr)
{
        _cleanup_close_ int dfd = -1, rfd = -1, fd = -1;
        _cleanup_free_ uint8_t *bpf = NULL;
        char src[128], name[80], tmp[128];
        size_t len = 0;
        int r;

        if (ck_mkdir_p(dir, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", dir);
        dfd = open_dir(dir, reterr);
        if (dfd < 0)
                return dfd;
        rfd = open_dir(runtime_root, reterr);
        if (rfd < 0)
                return rfd;
        snprintf(src, sizeof(src), "%s/seccomp.bpf", id);
        r = read_filter(rfd, src, &bpf, &len, reterr);
        if (r < 0)
                return r;
        if (!seccomp_cache_filter_valid(len))
                return ck_error_set(reterr, -EBADMSG, "%s/%s: not a seccomp filter (%zu bytes)",
                                    runtime_root, src, len);
        snprintf(name, sizeof(name), "%s.bpf", key);
        /* Two starts may keep the same filter at once: each writes its own temporary file
         * (O_EXCL, named by thread) and renames it, so a reader only ever sees a whole filter. */
        snprintf(tmp, sizeof(tmp), ".%s.%d.%d.tmp", key, (int)getpid(), (int)gettid());
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s/%s", dir, tmp);
        r = ck_write_all(fd, bpf, len);
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return ck_error_errno(reterr, r, "cannot write %s/%s", dir, name);
        }
        return 0;
}
