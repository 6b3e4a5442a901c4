/* The data dir's storage check against fake mountinfo and sysfs trees: the data dir is a real
 * directory (its real st_dev), and the fake trees say what that device is. */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "storage-check.h"

static char tmpdir[] = "/tmp/ck-storage-XXXXXX";
static char data_dir[300], mountinfo[300], sysfs[300], devdir[300];

static int setup(void **state)
{
        struct stat st;

        if (!mkdtemp(tmpdir))
                return -1;
        (void)snprintf(data_dir, sizeof(data_dir), "%s/data", tmpdir);
        (void)snprintf(mountinfo, sizeof(mountinfo), "%s/mountinfo", tmpdir);
        (void)snprintf(sysfs, sizeof(sysfs), "%s/sys", tmpdir);
        if (mkdir(data_dir, 0700) < 0 || stat(data_dir, &st) < 0)
                return -1;
        (void)snprintf(devdir, sizeof(devdir), "dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
        return 0;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

/* Each test starts from an empty sysfs. */
static int fresh_sysfs(void **state)
{
        (void)ck_rm_rf_at(AT_FDCWD, sysfs);
        return ck_mkdir_p(sysfs, 0755);
}

/* Writes content to sysfs/rel, creating the directories on the way. */
static void put(const char *rel, const char *content)
{
        char path[600], dir[600];
        FILE *f;

        (void)snprintf(path, sizeof(path), "%s/%s", sysfs, rel);
        (void)snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = 0;
        assert_int_equal(ck_mkdir_p(dir, 0755), 0);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void put_dev(const char *attr, const char *content)
{
        char rel[400];

        (void)snprintf(rel, sizeof(rel), "%s/%s", devdir, attr);
        put(rel, content);
}

/* A mount table with unrelated lines around the one for the data dir's device. */
static void mount_as(const char *fstype, const char *source)
{
        struct stat st;
        FILE *f;

        assert_int_equal(stat(data_dir, &st), 0);
        f = fopen(mountinfo, "we");
        assert_non_null(f);
        fprintf(f, "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n");
        fprintf(f, "23 1 0:5 / /dev rw,nosuid shared:2 master:1 - devtmpfs udev rw,size=4k\n");
        fprintf(f, "36 1 %u:%u / %s rw,relatime shared:1 - %s %s rw\n", major(st.st_dev), minor(st.st_dev),
                tmpdir, fstype, source);
        fprintf(f, "37 36 %u:%u /data /elsewhere rw - %s %s rw\n", major(st.st_dev), minor(st.st_dev),
                fstype, source);
        assert_int_equal(fclose(f), 0);
}

static void check(bool want_ok, const char *want_what)
{
        const struct conkerd_storage_roots roots = {.mountinfo = mountinfo, .sysfs = sysfs};
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *what = NULL;
        bool ok = !want_ok;
        int r;

        r = conkerd_storage_check(data_dir, &roots, &ok, &what, NULL, &e);
        if (r < 0)
                fail_msg("%s", ck_error_message(e, r));
        assert_string_equal(what, want_what);
        assert_int_equal(ok, want_ok);
}

static void test_tmpfs(void **state)
{
        mount_as("tmpfs", "tmpfs");
        check(true, "tmpfs (TD memory)");
        mount_as("ramfs", "none");
        check(true, "ramfs (TD memory)");
}

/* The TD image without a state disk: the data dir is on the initramfs, the kernel's rootfs. */
static void test_initramfs_rootfs(void **state)
{
        mount_as("rootfs", "rootfs");
        check(true, "rootfs (TD memory: the initramfs)");
}

/* The line conkerd logs at start (under every TEE) and prints for --check-storage. */
static void test_describe(void **state)
{
        _cleanup_free_ char *yes = conkerd_storage_describe(
                "/var/lib/conker", true,
                "ext4 on /dev/mapper/conker-state (dm-1 conker-state: LUKS2 with integrity over dm-0)");
        _cleanup_free_ char *no =
                conkerd_storage_describe("/d", false, "ext4 on /dev/vda (vda: not dm-crypt with integrity)");

        assert_string_equal(yes, "data dir /var/lib/conker: ext4 on /dev/mapper/conker-state (dm-1 "
                                 "conker-state: LUKS2 with integrity over dm-0): host-proof");
        assert_string_equal(no, "data dir /d: ext4 on /dev/vda (vda: not dm-crypt with integrity): NOT "
                                "host-proof (the host can read and rewrite it)");
}

static void test_plain_disk_refused(void **state)
{
        mount_as("ext4", "/dev/vda1");
        put_dev("uevent", "MAJOR=253\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\n");
        put_dev("partition", "1\n");
        check(false, "ext4 on /dev/vda1 (vda1: not dm-crypt with integrity)");
}

static void luks2_top(void)
{
        mount_as("ext4", "/dev/mapper/state");
        put_dev("uevent", "MAJOR=252\nMINOR=1\nDEVNAME=dm-1\nDEVTYPE=disk\n");
        put_dev("dm/name", "state\n");
        put_dev("dm/uuid", "CRYPT-LUKS2-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f60-state\n");
}

static void test_luks2_integrity_accepted(void **state)
{
        luks2_top();
        put_dev("slaves/dm-0/dev", "252:0\n");
        put("class/block/dm-0/uevent", "DEVNAME=dm-0\n");
        put("class/block/dm-0/dm/name", "state_dif\n");
        put("class/block/dm-0/dm/uuid", "CRYPT-SUBDEV-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f60-state_dif\n");
        check(true, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 with integrity over dm-0)");
        /* cryptsetup 2.7 (the TD image's) names it CRYPT-INTEGRITY-, as read in the TD. */
        put("class/block/dm-0/dm/uuid", "CRYPT-INTEGRITY-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f60-state_dif\n");
        check(true, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 with integrity over dm-0)");
}

/* A dm-integrity device that is not this volume's own (integritysetup's, or another LUKS2
 * volume's) under a LUKS2 mapping without integrity: not authenticated encryption. */
static void test_foreign_integrity_refused(void **state)
{
        luks2_top();
        put_dev("slaves/dm-0/dev", "252:0\n");
        put("class/block/dm-0/uevent", "DEVNAME=dm-0\n");
        put("class/block/dm-0/dm/uuid", "CRYPT-INTEGRITY-other\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");
        put("class/block/dm-0/dm/uuid", "CRYPT-INTEGRITY-1111111111111111111111111111111-x_dif\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");
        put("class/block/dm-0/dm/uuid", "CRYPT-INTEGRITY-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f6\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");
}

static void test_luks2_without_integrity_refused(void **state)
{
        luks2_top();
        put_dev("slaves/vdb/dev", "254:16\n");
        put("class/block/vdb/uevent", "DEVNAME=vdb\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");

        /* The slave is a dm device, but not the integrity device cryptsetup makes (LVM). */
        put("class/block/vdb/dm/uuid", "LVM-abcdef\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");
}

/* cryptsetup puts the LUKS2 mapping over its own dm-integrity device alone. A second device
 * under it (a table spanning the integrity device and another one, here one that even claims
 * the same volume) means some of the data may live outside the integrity device. */
static void test_two_slaves_refused(void **state)
{
        luks2_top();
        put_dev("slaves/dm-0/dev", "252:0\n");
        put("class/block/dm-0/uevent", "DEVNAME=dm-0\n");
        put("class/block/dm-0/dm/uuid", "CRYPT-INTEGRITY-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f60-state_dif\n");
        put_dev("slaves/dm-5/dev", "252:5\n");
        put("class/block/dm-5/uevent", "DEVNAME=dm-5\n");
        put("class/block/dm-5/dm/uuid", "CRYPT-INTEGRITY-0f4c2c1e6a2b4e3c9d7a1b2c3d4e5f60-other_dif\n");
        check(false, "ext4 on /dev/mapper/state (dm-1 state: LUKS2 without integrity)");
}

static void test_other_dm_refused(void **state)
{
        mount_as("xfs", "/dev/mapper/plain");
        put_dev("uevent", "DEVNAME=dm-2\n");
        put_dev("dm/name", "plain\n");
        put_dev("dm/uuid", "CRYPT-PLAIN-plain\n");
        check(false, "xfs on /dev/mapper/plain (dm-2 plain: dm-crypt but not LUKS2 with integrity)");
        put_dev("dm/uuid", "LVM-Xyz\n");
        check(false, "xfs on /dev/mapper/plain (dm-2 plain: device-mapper but not dm-crypt)");
}

static void test_loop_refused(void **state)
{
        mount_as("ext4", "/dev/loop0");
        put_dev("uevent", "MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n");
        put_dev("loop/backing_file", "/var/tmp/state.img\n");
        check(false, "ext4 on /dev/loop0 (loop0: a loop device over /var/tmp/state.img, not dm-crypt with "
                     "integrity)");
}

static void test_not_block_refused(void **state)
{
        /* overlay, virtiofs, 9p, NFS: an anonymous device with no sysfs entry */
        mount_as("virtiofs", "hostshare");
        check(false, "virtiofs on hostshare (not a block device)");
}

static void test_no_mount_is_an_error(void **state)
{
        const struct conkerd_storage_roots roots = {.mountinfo = mountinfo, .sysfs = sysfs};
        _cleanup_error_ struct ck_error *e = NULL;
        char *what = NULL;
        bool ok = true;
        FILE *f = fopen(mountinfo, "we");

        assert_non_null(f);
        fprintf(f, "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n");
        assert_int_equal(fclose(f), 0);
        assert_int_equal(conkerd_storage_check(data_dir, &roots, &ok, &what, NULL, &e), -ENOENT);
        assert_true(ok); /* untouched on failure */
        assert_null(what);
        assert_non_null(strstr(ck_error_message(e, -ENOENT), data_dir));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_tmpfs, fresh_sysfs),
                cmocka_unit_test_setup(test_initramfs_rootfs, fresh_sysfs),
                cmocka_unit_test_setup(test_describe, fresh_sysfs),
                cmocka_unit_test_setup(test_plain_disk_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_luks2_integrity_accepted, fresh_sysfs),
                cmocka_unit_test_setup(test_luks2_without_integrity_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_foreign_integrity_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_two_slaves_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_other_dm_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_loop_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_not_block_refused, fresh_sysfs),
                cmocka_unit_test_setup(test_no_mount_is_an_error, fresh_sysfs),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
