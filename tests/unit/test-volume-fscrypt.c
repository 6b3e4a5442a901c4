/* Integration test of encrypted volumes (root, loop devices, ext4 -O encrypt): data written
 * through a volume reads back, the backing image holds neither the plaintext nor the file name,
 * delete removes the key from the filesystem keyring and the files, names are validated, and a
 * manager opened in another mount namespace shares the loop device instead of attaching again.
 * Skips (with the reason) when not root or when loop devices or fscrypt are unavailable. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fscrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "volume.h"

#define OWNER  "0123456789abcdef"
#define MARKER "CONKER-PLAINTEXT-MARKER-7f3a9c"
#define FNAME  "CONKER-FILENAME-MARKER-51bd.txt"
#define CLEAR  "CONKER-CLEARTEXT-CONTROL-8e21"

static char data_dir[64];
static struct volume_manager *vm;
static const char *skip_reason;

static int setup(void **state)
{
        struct volume_config cfg = {.backing_size = 64u << 20, .force_image = true};
        struct ck_error *err = NULL;
        int r;

        if (geteuid() != 0) {
                skip_reason = "needs root";
                return 0;
        }
        if (access("/dev/loop-control", F_OK) < 0) {
                skip_reason = "no /dev/loop-control";
                return 0;
        }
        snprintf(data_dir, sizeof(data_dir), "/tmp/ck-test-vol-XXXXXX");
        if (!mkdtemp(data_dir))
                return -1;
        cfg.data_dir = data_dir;
        r = volume_manager_open(&cfg, &vm, &err);
        if (r == -EOPNOTSUPP || r == -ENODEV || r == -ENXIO || r == -ENOENT || r == -EBUSY) {
                fprintf(stderr, "skipping: %s\n", ck_error_message(err, r));
                skip_reason = "loop devices or fscrypt unavailable";
                ck_error_free(err);
                return 0;
        }
        if (r < 0) {
                fprintf(stderr, "volume_manager_open: %s\n", ck_error_message(err, r));
                ck_error_free(err);
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        if (vm) {
                struct ck_error *err = NULL;
                if (volume_manager_unmount(vm, &err) < 0)
                        fprintf(stderr, "unmount: %s\n", ck_error_message(err, -EIO));
                ck_error_free(err);
                volume_manager_free(vm);
        }
        if (data_dir[0])
                ck_rm_rf_at(AT_FDCWD, data_dir);
        return 0;
}

#define NEED_ENV()                                                                                          \
        do {                                                                                                \
                if (skip_reason || !vm) {                                                                   \
                        fprintf(stderr, "skipped: %s\n", skip_reason ? skip_reason : "no volume manager");  \
                        skip();                                                                             \
                }                                                                                           \
        } while (0)

static bool image_contains(const char *needle)
{
        char img[128];
        uint8_t *buf = NULL;
        size_t len = 0;
        bool found;

        snprintf(img, sizeof(img), "%s/volumes.img", data_dir);
        assert_int_equal(ck_read_file(img, 256u << 20, &buf, &len, NULL), 0);
        found = memmem(buf, len, needle, strlen(needle)) != NULL;
        free(buf);
        return found;
}

static void test_names(void **state)
{
        char *p = NULL;
        char longname[140];

        NEED_ENV();
        memset(longname, 'a', 129);
        longname[129] = 0;
        const char *bad[] = {"", ".hidden", "a/b", "..", ".", "-x", "a b", longname};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(volume_create(vm, OWNER, bad[i], &p, NULL), -EINVAL);
                assert_int_equal(volume_delete(vm, OWNER, bad[i], NULL), -EINVAL);
        }
        assert_int_equal(volume_create(vm, "short", "data", &p, NULL), -EINVAL);
        assert_int_equal(volume_create(vm, "UPPERCASE0123", "data", &p, NULL), -EINVAL);
        assert_int_equal(volume_create(vm, "../../../../etc", "data", &p, NULL), -EINVAL);
}

static void test_encrypted_roundtrip_and_erase(void **state)
{
        struct fscrypt_get_policy_ex_arg pol = {.policy_size = sizeof(pol.policy)};
        struct fscrypt_get_key_status_arg ks = {.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER};
        char *path = NULL, *again = NULL, fpath[512], cpath[512];
        char content[64 * 1024], back[sizeof(content)];
        int dfd, fd, rootfd;
        struct stat st;

        NEED_ENV();
        assert_int_equal(volume_create(vm, OWNER, "data", &path, NULL), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));

        for (size_t i = 0; i + strlen(MARKER) < sizeof(content); i += strlen(MARKER))
                memcpy(content + i, MARKER, strlen(MARKER));
        snprintf(fpath, sizeof(fpath), "%s/%s", path, FNAME);
        fd = open(fpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ck_write_all(fd, content, sizeof(content)), 0);
        assert_int_equal(fsync(fd), 0);
        close(fd);
        /* Positive control: the same search finds text stored outside the encrypted dir. */
        snprintf(cpath, sizeof(cpath), "%s/volumes/%s/control", data_dir, OWNER);
        fd = open(cpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ck_write_all(fd, CLEAR, strlen(CLEAR)), 0);
        assert_int_equal(fsync(fd), 0);
        assert_int_equal(syncfs(fd), 0);
        close(fd);

        fd = open(fpath, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, back, sizeof(back)), sizeof(back));
        close(fd);
        assert_memory_equal(back, content, sizeof(content));

        assert_true(image_contains(CLEAR));
        assert_false(image_contains(MARKER));
        assert_false(image_contains(FNAME));

        /* Opening again while the key is present gives the same path. */
        assert_int_equal(volume_create(vm, OWNER, "data", &again, NULL), 0);
        assert_string_equal(path, again);
        free(again);

        dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(ioctl(dfd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &pol), 0);
        close(dfd);
        assert_int_equal(pol.policy.version, FSCRYPT_POLICY_V2);
        assert_int_equal(pol.policy.v2.contents_encryption_mode, FSCRYPT_MODE_AES_256_XTS);
        assert_int_equal(pol.policy.v2.filenames_encryption_mode, FSCRYPT_MODE_AES_256_CTS);
        memcpy(ks.key_spec.u.identifier, pol.policy.v2.master_key_identifier, FSCRYPT_KEY_IDENTIFIER_SIZE);
        rootfd = open(volume_manager_root(vm), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(rootfd >= 0);
        assert_int_equal(ioctl(rootfd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &ks), 0);
        assert_int_equal(ks.status, FSCRYPT_KEY_STATUS_PRESENT);

        unlink(cpath);
        assert_int_equal(volume_delete(vm, OWNER, "data", NULL), 0);
        assert_int_equal(ioctl(rootfd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &ks), 0);
        assert_int_equal(ks.status, FSCRYPT_KEY_STATUS_ABSENT);
        assert_int_equal(stat(path, &st), -1);
        assert_int_equal(errno, ENOENT);
        /* Safe to repeat. */
        assert_int_equal(volume_delete(vm, OWNER, "data", NULL), 0);
        close(rootfd);
        free(path);
}

static void test_reopen_reuses_mount(void **state)
{
        struct volume_config cfg = {.data_dir = data_dir, .backing_size = 64u << 20, .force_image = true};
        struct volume_manager *vm2 = NULL;
        char *p = NULL;

        NEED_ENV();
        assert_int_equal(volume_manager_open(&cfg, &vm2, NULL), 0);
        assert_string_equal(volume_manager_root(vm2), volume_manager_root(vm));
        assert_int_equal(volume_create(vm2, OWNER, "second", &p, NULL), 0);
        free(p);
        /* The first manager sees it too: one filesystem. */
        assert_int_equal(volume_create(vm, OWNER, "second", &p, NULL), 0);
        free(p);
        assert_int_equal(volume_delete(vm2, OWNER, "second", NULL), 0);
        volume_manager_free(vm2); /* no unmount: vm still owns it */
}

/* conkerd restarted in a fresh mount namespace (as conkerd.service is) does not see the image's
 * mount, but containers of the earlier instance may still use it: the new manager must mount
 * the same loop device (one superblock) instead of attaching the image a second time. The child
 * process plays the restarted conkerd: new namespace, the mount removed from its view. */
static void test_reopen_in_another_mount_namespace(void **state)
{
        struct stat parent_st;
        int status;
        pid_t pid;

        NEED_ENV();
        assert_int_equal(stat(volume_manager_root(vm), &parent_st), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct volume_config cfg = {
                        .data_dir = data_dir, .backing_size = 64u << 20, .force_image = true};
                struct volume_manager *vm2 = NULL;
                struct stat st;

                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(10);
                if (umount2(volume_manager_root(vm), MNT_DETACH) < 0)
                        _exit(11);
                if (stat(volume_manager_root(vm), &st) < 0 || st.st_dev == parent_st.st_dev)
                        _exit(12); /* the mount must be gone from this view */
                if (volume_manager_open(&cfg, &vm2, NULL) < 0)
                        _exit(13);
                if (stat(volume_manager_root(vm2), &st) < 0)
                        _exit(14);
                /* The same filesystem (st_dev is the superblock's), not a second mount of the image. */
                _exit(st.st_dev == parent_st.st_dev ? 0 : 15);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* A volume directory found without an fscrypt policy (made by someone else, or never
 * encrypted), or whose key is gone (crypto-erased), is refused: never handed to a container as
 * if it were the encrypted volume. */
static void test_reopen_refuses_plain_or_erased(void **state)
{
        struct fscrypt_get_policy_ex_arg pol = {.policy_size = sizeof(pol.policy)};
        struct fscrypt_remove_key_arg rk = {.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER};
        _cleanup_error_ struct ck_error *e = NULL, *e2 = NULL;
        char plain[512], *p = NULL, *q = NULL;
        int dfd, rootfd;

        NEED_ENV();
        assert_int_equal(volume_create(vm, OWNER, "erased", &p, NULL), 0);
        snprintf(plain, sizeof(plain), "%s/%s/plain", volume_manager_root(vm), OWNER);
        assert_int_equal(mkdir(plain, 0755), 0);
        assert_true(volume_create(vm, OWNER, "plain", &q, &e) < 0);
        assert_non_null(strstr(e->msg, "without encryption policy"));
        assert_null(q);

        dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(ioctl(dfd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &pol), 0);
        close(dfd);
        memcpy(rk.key_spec.u.identifier, pol.policy.v2.master_key_identifier, FSCRYPT_KEY_IDENTIFIER_SIZE);
        rootfd = open(volume_manager_root(vm), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(rootfd >= 0);
        assert_int_equal(ioctl(rootfd, FS_IOC_REMOVE_ENCRYPTION_KEY, &rk), 0);
        close(rootfd);
        assert_int_equal(volume_create(vm, OWNER, "erased", &q, &e2), -ENOKEY);
        assert_null(q);

        assert_int_equal(volume_delete(vm, OWNER, "plain", NULL), 0);
        assert_int_equal(volume_delete(vm, OWNER, "erased", NULL), 0);
        free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_encrypted_roundtrip_and_erase),
                cmocka_unit_test(test_reopen_reuses_mount),
                cmocka_unit_test(test_reopen_in_another_mount_namespace),
                cmocka_unit_test(test_reopen_refuses_plain_or_erased),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
