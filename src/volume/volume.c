/* Encrypted volumes with fscrypt v2 (see volume.h and docs/design.md §6).
 *
 * <data_dir>/volumes is an ext4 filesystem with the encrypt feature: the data dir's own when it
 * has it, otherwise <data_dir>/volumes.img (sparse, mkfs.ext4 -O encrypt) attached to a loop
 * device with LOOP_CONFIGURE (autoclear) and mounted there; a mount found there is reused, so
 * opening is idempotent across restarts. Each volume is <owner>/<name> with a v2 policy
 * (AES-256-XTS contents, AES-256-CTS names) and its own random 512-bit raw key, given to the
 * filesystem keyring with FS_IOC_ADD_ENCRYPTION_KEY and wiped from our memory right after.
 * Deleting removes the key (FS_IOC_REMOVE_ENCRYPTION_KEY) before the files: crypto-erase first. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fscrypt.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "exec.h"
#include "fs.h"
#include "log.h"
#include "secret.h"
#include "volume.h"

#define VOLUME_KEY_SIZE   64 /* AES-256-XTS takes a 512-bit key */
#define LOOP_ATTACH_TRIES 16
/* Loop devices looked at when searching for one already backed by the image. */
#define LOOP_SCAN_MAX 4096

struct volume_manager {
        char *data_dir, *root, *image;
        int root_fd;
        bool mounted_image; /* root is our loop mount */
};

static bool name_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 128)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return false;
        }
        return true;
}

static bool owner_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n < 12 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* 0 when fd's filesystem can hold fscrypt policies, -EOPNOTSUPP otherwise. */
static int fs_supports_encrypt(int fd)
{
        struct fscrypt_get_policy_ex_arg arg = {.policy_size = sizeof(arg.policy)};
        if (ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) == 0)
                return 0;
        /* An unencrypted directory on a capable filesystem has no policy: ENODATA. */
        return errno == ENODATA ? 0 : -EOPNOTSUPP;
}

void volume_manager_free(struct volume_manager *vm)
{
        if (!vm)
                return;
        safe_close(vm->root_fd);
        free(vm->data_dir);
        free(vm->root);
        free(vm->image);
        free(vm);
}
DEFINE_POINTER_CLEANUP(struct volume_manager, volume_manager_free, volume_manager_free)

const char *volume_manager_root(struct volume_manager *vm)
{
        return vm->root;
}

static int image_create(const char *image, uint64_t size, struct ck_error **reterr)
{
        _cleanup_close_ int fd = -1;
        char *argv[] = {"mkfs.ext4",      "-q",          "-F", "-O", "encrypt", "-E", "root_owner=0:0", "-L",
                        "conker-volumes", (char *)image, NULL};
        int r;

        fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", image);
        if (ftruncate(fd, (off_t)size) < 0) {
                r = -errno;
                (void)unlink(image);
                return ck_error_errno(reterr, r, "cannot size %s", image);
        }
        fd = safe_close(fd);
        r = ck_exec(argv, NULL, NULL, NULL, reterr);
        if (r < 0) {
                (void)unlink(image);
                return ck_error_prefix(reterr, r, "cannot make the volume filesystem");
        }
        return 0;
}

/* Attaches image to a free loop device; returns the open device fd and its path. */
static int loop_attach(const char *image, char ret_dev[32], struct ck_error **reterr)
{
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

        if (ctl < 0)
                return ck_error_errno(reterr, -errno, "no loop devices (/dev/loop-control)");
        if (img < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", image);
        /* Another process may take the device between GET_FREE and CONFIGURE: retry. */
        for (int i = 0; i < LOOP_ATTACH_TRIES; i++) {
                struct loop_config lc = {.fd = (uint32_t)img, .block_size = 0};
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                int dev;

                if (n < 0)
                        return ck_error_errno(reterr, -errno, "LOOP_CTL_GET_FREE");
                snprintf(ret_dev, 32, "/dev/loop%d", n);
                dev = open(ret_dev, O_RDWR | O_CLOEXEC);
                if (dev < 0)
                        return ck_error_errno(reterr, -errno, "cannot open %s", ret_dev);
                lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
                snprintf((char *)lc.info.lo_file_name, sizeof(lc.info.lo_file_name), "%s", image);
                if (ioctl(dev, LOOP_CONFIGURE, &lc) == 0)
                        return dev;
                if (errno != EBUSY) {
                        int r = -errno;
                        close(dev);
                        return ck_error_errno(reterr, r, "LOOP_CONFIGURE %s", ret_dev);
                }
                close(dev);
        }
        return ck_error_set(reterr, -EBUSY, "no free loop device after %d tries", LOOP_ATTACH_TRIES);
}

/* The loop device already backed by image, if any: after a restart in another mount namespace
 * (conkerd.service has its own), the earlier mount is invisible but may still be in use by running
 * containers. Mounting a second loop device over the same image would give two ext4 superblocks
 * on one file, which corrupts it; mounting the same device again shares the one superblock.
 * Identity is the backing file's device and inode, not its path. Returns 1 and the path when
 * found, 0 when not. */
static int loop_find(const char *image, char ret_dev[32])
{
        DIR *d;
        struct dirent *de;
        struct stat st;
        unsigned seen = 0;
        int found = 0;

        if (stat(image, &st) < 0)
                return 0;
        d = ck_opendir_at(AT_FDCWD, "/sys/block");
        if (!d)
                return 0;
        while ((de = readdir(d)) && seen < LOOP_SCAN_MAX) {
                struct loop_info64 info;
                char dev[32];
                int fd, r;

                if (strncmp(de->d_name, "loop", 4) != 0 || !de->d_name[4] ||
                    strspn(de->d_name + 4, "0123456789") != strlen(de->d_name + 4) ||
                    strlen(de->d_name) > 16)
                        continue;
                seen++;
                snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
                fd = open(dev, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                r = ioctl(fd, LOOP_GET_STATUS64, &info);
                close(fd);
                if (r == 0 && info.lo_device == (uint64_t)st.st_dev &&
                    info.lo_inode == (uint64_t)st.st_ino) {
                        memcpy(ret_dev, dev, sizeof(dev));
                        found = 1;
                        break;
                }
        }
        closedir(d);
        return found;
}

static bool is_mountpoint(const char *path, const char *parent)
{
        struct stat a, b;
        return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int volume_manager_open(const struct volume_config *cfg, struct volume_manager **ret,
                        struct ck_error **reterr)
{
        _cleanup_(volume_manager_freep) struct volume_manager *vm = calloc(1, sizeof(*vm));
        int r;

        if (!vm)
                return -ENOMEM;
        vm->root_fd = -1;
        vm->data_dir = strdup(cfg->data_dir && *cfg->data_dir ? cfg->data_dir : "/var/lib/conker");
        if (!vm->data_dir || asprintf(&vm->root, "%s/volumes", vm->data_dir) < 0 ||
            asprintf(&vm->image, "%s/volumes.img", vm->data_dir) < 0)
                return -ENOMEM;
        if (ck_mkdir_p(vm->root, 0700) < 0)
                return ck_error_errno(reterr, -errno, "cannot create %s", vm->root);

        if (is_mountpoint(vm->root, vm->data_dir)) {
                vm->mounted_image = true; /* ours from an earlier start */
        } else if (cfg->force_image || ({
                           _cleanup_close_ int fd = open(vm->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                           fd < 0 || fs_supports_encrypt(fd) < 0;
                   })) {
                _cleanup_close_ int dev = -1;
                char devpath[32];

                if (access(vm->image, F_OK) < 0) {
                        r = image_create(vm->image, cfg->backing_size ? cfg->backing_size : 4ull << 30,
                                         reterr);
                        if (r < 0)
                                return r;
                }
                if (loop_find(vm->image, devpath) > 0) {
                        /* Still mounted in another mount namespace: share that filesystem. */
                        if (mount(devpath, vm->root, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                                return ck_error_errno(reterr, -errno,
                                                      "cannot mount %s (already backing %s) on %s", devpath,
                                                      vm->image, vm->root);
                        log_info("volumes: %s is still attached to %s; mounted it again", vm->image,
                                 devpath);
                } else {
                        dev = loop_attach(vm->image, devpath, reterr);
                        if (dev < 0)
                                return dev;
                        if (mount(devpath, vm->root, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0) {
                                r = -errno;
                                (void)ioctl(dev, LOOP_CLR_FD, 0);
                                return ck_error_errno(reterr, r, "cannot mount %s on %s", devpath, vm->root);
                        }
                }
                /* With autoclear the device goes away with the last mount; our fd can close. */
                vm->mounted_image = true;
        }
        vm->root_fd = open(vm->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (vm->root_fd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", vm->root);
        if (fs_supports_encrypt(vm->root_fd) < 0)
                return ck_error_set(reterr, -EOPNOTSUPP, "%s does not support fscrypt (ext4 -O encrypt)",
                                    vm->root);
        (void)fchmod(vm->root_fd, 0700);
        *ret = TAKE_PTR(vm);
        return 0;
}

int volume_manager_unmount(struct volume_manager *vm, struct ck_error **reterr)
{
        if (!vm->mounted_image)
                return 0;
        vm->root_fd = safe_close(vm->root_fd);
        if (umount2(vm->root, 0) < 0 && errno != EINVAL)
                return ck_error_errno(reterr, -errno, "cannot unmount %s", vm->root);
        vm->mounted_image = false;
        return 0;
}

static int get_policy(int dirfd, struct fscrypt_policy_v2 *ret)
{
        struct fscrypt_get_policy_ex_arg arg = {.policy_size = sizeof(arg.policy)};
        if (ioctl(dirfd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) < 0)
                return -errno;
        if (arg.policy.version != FSCRYPT_POLICY_V2)
                return -EPROTO;
        *ret = arg.policy.v2;
        return 0;
}

static int key_status(int fsfd, const uint8_t id[FSCRYPT_KEY_IDENTIFIER_SIZE], uint32_t *ret)
{
        struct fscrypt_get_key_status_arg arg = {.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER};
        memcpy(arg.key_spec.u.identifier, id, FSCRYPT_KEY_IDENTIFIER_SIZE);
        if (ioctl(fsfd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &arg) < 0)
                return -errno;
        *ret = arg.status;
        return 0;
}

static int key_remove(int fsfd, const uint8_t id[FSCRYPT_KEY_IDENTIFIER_SIZE], uint32_t *ret_flags)
{
        struct fscrypt_remove_key_arg arg = {.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER};
        memcpy(arg.key_spec.u.identifier, id, FSCRYPT_KEY_IDENTIFIER_SIZE);
        if (ioctl(fsfd, FS_IOC_REMOVE_ENCRYPTION_KEY, &arg) < 0)
                return -errno;
        *ret_flags = arg.removal_status_flags;
        return 0;
}

/* Adds a fresh random key to the filesystem keyring; returns its identifier. */
static int key_add_random(int fsfd, uint8_t ret_id[FSCRYPT_KEY_IDENTIFIER_SIZE], struct ck_error **reterr)
{
        size_t sz = sizeof(struct fscrypt_add_key_arg) + VOLUME_KEY_SIZE;
        struct fscrypt_add_key_arg *arg = calloc(1, sz);
        _cleanup_secret_ struct ck_secret *key = NULL;
        int r;

        if (!arg)
                return -ENOMEM;
        r = ck_secret_random(VOLUME_KEY_SIZE, &key);
        if (r < 0) {
                free(arg);
                return ck_error_errno(reterr, r, "no randomness for the volume key");
        }
        arg->key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
        arg->raw_size = VOLUME_KEY_SIZE;
        memcpy(arg->raw, key->data, VOLUME_KEY_SIZE);
        r = ioctl(fsfd, FS_IOC_ADD_ENCRYPTION_KEY, arg) < 0 ? -errno : 0;
        if (r == 0)
                memcpy(ret_id, arg->key_spec.u.identifier, FSCRYPT_KEY_IDENTIFIER_SIZE);
        OPENSSL_cleanse(arg, sz);
        free(arg);
        if (r < 0)
                return ck_error_errno(reterr, r, "FS_IOC_ADD_ENCRYPTION_KEY");
        return 0;
}

static char *volume_path(struct volume_manager *vm, const char *owner, const char *name)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s/%s", vm->root, owner, name) < 0 ? NULL : p;
}

int volume_create(struct volume_manager *vm, const char *owner, const char *name, char **ret_path,
                  struct ck_error **reterr)
{
        _cleanup_close_ int ofd = -1, dfd = -1;
        _cleanup_free_ char *path = NULL;
        struct fscrypt_policy_v2 pol = {
                .version = FSCRYPT_POLICY_V2,
                .contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS,
                .filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS,
                .flags = FSCRYPT_POLICY_FLAGS_PAD_32,
        };
        uint32_t status = 0, flags;
        int r;

        if (!owner_valid(owner))
                return ck_error_set(reterr, -EINVAL, "invalid volume owner");
        if (!name_valid(name))
                return ck_error_set(reterr, -EINVAL,
                                    "invalid volume name (want [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127})");
        path = volume_path(vm, owner, name);
        if (!path)
                return -ENOMEM;
        if (mkdirat(vm->root_fd, owner, 0700) < 0 && errno != EEXIST)
                return ck_error_errno(reterr, -errno, "cannot create the volume directory of %s", owner);
        ofd = openat(vm->root_fd, owner, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ofd < 0)
                return ck_error_errno(reterr, -errno, "cannot open the volume directory of %s", owner);

        dfd = openat(ofd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd >= 0) {
                r = get_policy(dfd, &pol);
                if (r < 0)
                        return ck_error_errno(reterr, r, "volume %s exists without encryption policy", name);
                r = key_status(vm->root_fd, pol.master_key_identifier, &status);
                if (r < 0)
                        return ck_error_errno(reterr, r, "volume %s: key status", name);
                if (status != FSCRYPT_KEY_STATUS_PRESENT)
                        return ck_error_set(reterr, -ENOKEY,
                                            "volume %s exists but its key is gone (crypto-erased)", name);
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        if (errno != ENOENT)
                return ck_error_errno(reterr, -errno, "cannot open volume %s", name);

        r = key_add_random(vm->root_fd, pol.master_key_identifier, reterr);
        if (r < 0)
                return r;
        if (mkdirat(ofd, name, 0755) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot create volume %s", name);
                goto fail_key;
        }
        dfd = openat(ofd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 || ioctl(dfd, FS_IOC_SET_ENCRYPTION_POLICY, &pol) < 0) {
                r = ck_error_errno(reterr, -errno, "cannot set the encryption policy of volume %s", name);
                (void)unlinkat(ofd, name, AT_REMOVEDIR);
                goto fail_key;
        }
        *ret_path = TAKE_PTR(path);
        return 0;
fail_key:
        (void)key_remove(vm->root_fd, pol.master_key_identifier, &flags);
        return r;
}

int volume_delete(struct volume_manager *vm, const char *owner, const char *name, struct ck_error **reterr)
{
        _cleanup_close_ int ofd = -1, dfd = -1;
        struct fscrypt_policy_v2 pol;
        uint32_t flags = 0;
        int r;

        if (!owner_valid(owner))
                return ck_error_set(reterr, -EINVAL, "invalid volume owner");
        if (!name_valid(name))
                return ck_error_set(reterr, -EINVAL, "invalid volume name");
        ofd = openat(vm->root_fd, owner, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ofd < 0 && errno == ENOENT)
                return 0;
        if (ofd < 0)
                return ck_error_errno(reterr, -errno, "cannot open the volume directory of %s", owner);
        dfd = openat(ofd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 && errno == ENOENT)
                goto out;
        if (dfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open volume %s", name);
        r = get_policy(dfd, &pol);
        dfd = safe_close(dfd); /* an open fd would keep the key's inodes busy */
        if (r == 0) {
                /* Crypto-erase first: after this the contents are unreadable even if deleting the
                 * files below fails or is interrupted. */
                r = key_remove(vm->root_fd, pol.master_key_identifier, &flags);
                if (r < 0 && r != -ENOKEY)
                        return ck_error_errno(reterr, r, "cannot remove the key of volume %s", name);
                if (flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY)
                        log_warn("volume %s/%s: files still in use while its key was removed", owner, name);
        } else if (r != -ENODATA) {
                return ck_error_errno(reterr, r, "volume %s: policy", name);
        }
        r = ck_rm_rf_at(ofd, name);
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot remove volume %s", name);
out:
        ofd = safe_close(ofd);
        if (unlinkat(vm->root_fd, owner, AT_REMOVEDIR) < 0 && errno != ENOTEMPTY && errno != ENOENT &&
            errno != EEXIST)
                return ck_error_errno(reterr, -errno, "cannot remove the volume directory of %s", owner);
        return 0;
}
