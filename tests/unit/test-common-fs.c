/* Unit tests for bounded reads, atomic writes, rm -rf and root-confined opens. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"

static char tmpdir[64];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-fs-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static void test_atomic_write_and_bounded_read(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ uint8_t *d = NULL;
        _cleanup_error_ struct ck_error *e = NULL;
        size_t n = 0;
        struct stat st;

        assert_int_equal(ck_write_file_atomic(dfd, "f", "hello", 5, 0600, NULL), 0);
        assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(ck_read_file_at(dfd, "f", 5, &d, &n, NULL), 0);
        assert_int_equal(n, 5);
        assert_string_equal((char *)d, "hello");
        assert_int_equal(ck_read_file_at(dfd, "f", 4, &d, &n, &e), -EFBIG);
        assert_non_null(strstr(e->msg, "larger than 4 bytes"));
}

/* The temporary file of an atomic write is ".<name>.tmp.<pid>" in a directory others may write to
 * (an image store, a volume): a symlink planted under that name is not followed (the write
 * fails and its target keeps its content), and a stale temporary file with a wider mode does not
 * pass that mode on. */
static void test_atomic_write_planted_tmp(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *d = NULL;
        char tmp[64], canary[128];
        size_t n = 0;
        struct stat st;

        assert_int_equal(ck_write_file_atomic(dfd, "canary", "keep", 4, 0644, NULL), 0);
        snprintf(canary, sizeof(canary), "%s/canary", tmpdir);
        snprintf(tmp, sizeof(tmp), ".f.tmp.%d", (int)getpid());
        assert_int_equal(symlinkat(canary, dfd, tmp), 0);
        assert_int_equal(ck_write_file_atomic(dfd, "f", "evil", 4, 0600, NULL), -ELOOP);
        assert_int_equal(ck_read_file_at(dfd, "canary", 16, &d, &n, NULL), 0);
        assert_int_equal(n, 4);
        assert_memory_equal(d, "keep", 4);
        assert_int_equal(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(errno, ENOENT);

        snprintf(tmp, sizeof(tmp), ".g.tmp.%d", (int)getpid());
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, 0666), 0);
        assert_int_equal(ck_write_file_replace(dfd, "g", "s", 1, 0600, NULL), 0);
        assert_int_equal(fstatat(dfd, "g", &st, 0), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_in_root_confines(void **state)
{
        _cleanup_close_ int dfd = -1, rootfd = -1, fd = -1;
        char canary[128];

        dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(mkdirat(dfd, "root", 0755), 0);
        assert_int_equal(ck_write_file_atomic(dfd, "canary", "x", 1, 0644, NULL), 0);
        rootfd = openat(dfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        snprintf(canary, sizeof(canary), "%s/canary", tmpdir);
        assert_int_equal(symlinkat(canary, rootfd, "abs"), 0);
        assert_int_equal(symlinkat("../../../canary", rootfd, "rel"), 0);

        /* Both links resolve inside the root, where no canary exists. */
        assert_int_equal(ck_open_in_root(rootfd, "abs", O_RDONLY, 0), -ENOENT);
        assert_int_equal(ck_open_in_root(rootfd, "rel", O_RDONLY, 0), -ENOENT);
        assert_int_equal(ck_open_in_root(rootfd, "../canary", O_RDONLY, 0), -ENOENT);
        fd = ck_open_in_root(rootfd, "/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* never leaks into a helper we fork */
        assert_int_equal(faccessat(rootfd, "new", F_OK, 0), 0);
}

static size_t count_entries(DIR *d)
{
        struct dirent *de;
        size_t n = 0;

        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        return n;
}

/* Each scan of a long-lived directory fd sees every entry, and the stream's fd is close-on-exec. */
static void test_opendir_at(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_int_equal(ck_write_file_atomic(dfd, "a", "1", 1, 0600, NULL), 0);
        assert_int_equal(ck_write_file_atomic(dfd, "b", "2", 1, 0600, NULL), 0);
        for (int i = 0; i < 2; i++) {
                DIR *d = ck_opendir_at(dfd, ".");
                assert_non_null(d);
                assert_true(fcntl(dirfd(d), F_GETFD) & FD_CLOEXEC);
                assert_int_equal(count_entries(d), 2);
                closedir(d);
        }
        assert_null(ck_opendir_at(dfd, "missing"));
        assert_int_equal(errno, ENOENT);
        assert_null(ck_opendir_at(dfd, "a"));
        assert_int_equal(errno, ENOTDIR);
        assert_int_equal(mkdirat(dfd, "d", 0755), 0);
        assert_int_equal(symlinkat("d", dfd, "l"), 0);
        assert_null(ck_opendir_at(dfd, "l")); /* a symlink is not followed, even to a directory */
}

/* The child of test_rm_rf_stops_at_mounts, in a mount namespace of its own: 0 when rm -rf refused
 * to enter a tmpfs mounted inside the tree and left its file, 77 when it cannot mount. */
static int rm_rf_mount_child(void)
{
        _cleanup_close_ int dfd = -1;
        char m[128];

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return 77;
        snprintf(m, sizeof(m), "%s/a/m", tmpdir);
        if (ck_mkdir_p(m, 0755) < 0 || mount("none", m, "tmpfs", 0, "size=64k") < 0)
                return 77;
        /* Opened after the mount, in this namespace: an fd from before would walk the old tree. */
        dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return 1;
        snprintf(m, sizeof(m), "%s/a/m/keep", tmpdir);
        if (creat(m, 0600) < 0)
                return 2;
        if (ck_rm_rf_at(dfd, "a") != -EBUSY)
                return 3;
        if (access(m, F_OK) < 0)
                return 4;
        return 0;
}

/* rm -rf never crosses into another mount (a volume mounted under a task's directory). */
static void test_rm_rf_stops_at_mounts(void **state)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(rm_rf_mount_child());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                skip(); /* no CAP_SYS_ADMIN: cannot mount */
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* rm -rf removes symlinks, never what they point to: a link inside the tree and a link given as
 * the top itself both point at a directory beside the tree, whose file must survive. */
static void test_rm_rf(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char p[128];

        snprintf(p, sizeof(p), "%s/a/b/c", tmpdir);
        assert_int_equal(ck_mkdir_p(p, 0755), 0);
        assert_int_equal(ck_mkdir_p(p, 0755), 0);
        assert_int_equal(ck_write_file_atomic(dfd, "a/b/c/f", "1", 1, 0644, NULL), -EINVAL);
        snprintf(p, sizeof(p), "%s/a/b/c/f", tmpdir);
        assert_int_equal(creat(p, 0644) >= 0, 1);
        assert_int_equal(mkdirat(dfd, "keep", 0755), 0);
        assert_int_equal(ck_write_file_atomic(dfd, "keep", "1", 1, 0644, NULL), -EISDIR);
        snprintf(p, sizeof(p), "%s/keep/k", tmpdir);
        assert_int_equal(creat(p, 0644) >= 0, 1);
        snprintf(p, sizeof(p), "%s/keep", tmpdir);
        assert_int_equal(symlinkat(p, dfd, "a/link"), 0);
        assert_int_equal(symlinkat(p, dfd, "top"), 0);
        assert_int_equal(ck_rm_rf_at(dfd, "a"), 0);
        assert_int_equal(faccessat(dfd, "a", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(ck_rm_rf_at(dfd, "a"), 0); /* repeatable */
        assert_int_equal(ck_rm_rf_at(dfd, "top"), 0);
        assert_int_equal(faccessat(dfd, "top", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(faccessat(dfd, "keep/k", F_OK, AT_SYMLINK_NOFOLLOW), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_atomic_write_and_bounded_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_atomic_write_planted_tmp, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_in_root_confines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf, setup, teardown),
                cmocka_unit_test_setup_teardown(test_opendir_at, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf_stops_at_mounts, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
