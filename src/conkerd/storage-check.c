/* The data dir's storage check (storage-check.h). It reads two things the kernel publishes:
 * the mount table, for the filesystem type and source of the directory's device, and sysfs, for
 * what that block device is. Both roots are parameters so the unit test can hand it fake trees. */
#include <dirent.h>
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
#include "parse.h"
#include "storage-check.h"

#define MOUNTINFO_MAX  (4u << 20) /* thousands of mounts; a TD running conkerd has tens */
#define SYSFS_ATTR_MAX 4096u

DEFINE_POINTER_CLEANUP(DIR, closedir, closedir)

/* Finds the first line of mountinfo (proc(5)) whose major:minor is dev and returns copies of its
 * filesystem type and mount source. -ENOENT when no line matches. */
static int mount_find(const char *mountinfo, dev_t dev, char **ret_fstype, char **ret_source,
                      struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        char want[64];
        size_t len;
        int r;

        r = ck_read_file(mountinfo, MOUNTINFO_MAX, &buf, &len, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "cannot read the mount table");
        (void)snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));

        for (char *line = (char *)buf, *next; line && *line; line = next) {
                char *sep, *fields[3], *p = line;
                size_t i;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                /* mount ID, parent ID, major:minor */
                for (i = 0; i < 3 && p; i++) {
                        fields[i] = p;
                        p = strchr(p, ' ');
                        if (p)
                                *p++ = 0;
                }
                if (i < 3 || !p || strcmp(fields[2], want) != 0)
                        continue;
                /* optional fields end at a lone "-", then fstype and source */
                sep = strstr(p, " - ");
                if (!sep)
                        return ck_error_set(reterr, -EBADMSG, "%s: malformed line for device %s", mountinfo,
                                            want);
                char *fstype = sep + 3, *source = strchr(fstype, ' ');
                if (!source)
                        return ck_error_set(reterr, -EBADMSG, "%s: malformed line for device %s", mountinfo,
                                            want);
                *source++ = 0;
                char *end = strchr(source, ' ');
                if (end)
                        *end = 0;
                _cleanup_free_ char *t = strdup(fstype), *s = strdup(source);
                if (!t || !s)
                        return -ENOMEM;
                *ret_fstype = TAKE_PTR(t);
                *ret_source = TAKE_PTR(s);
                return 0;
        }
        return ck_error_set(reterr, -ENOENT, "no mount in %s has the device %s", mountinfo, want);
}

/* One sysfs attribute as a string without its trailing newline; *ret = NULL when absent. */
static int attr_read(int dirfd, const char *path, char **ret, struct ck_error **reterr)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = ck_read_file_at(dirfd, path, SYSFS_ATTR_MAX, &buf, &len, NULL);
        if (r == -ENOENT || r == -ENOTDIR) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return ck_error_errno(reterr, r, "cannot read sysfs attribute %s", path);
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                buf[--len] = 0;
        *ret = (char *)TAKE_PTR(buf);
        return 0;
}

/* The kernel's name of a block device ("vda1", "dm-0", "loop0") from its uevent. */
static int dev_name(int devfd, char **ret, struct ck_error **reterr)
{
        _cleanup_free_ char *uevent = NULL;
        const char *p;
        int r;

        r = attr_read(devfd, "uevent", &uevent, reterr);
        if (r < 0)
                return r;
        for (p = uevent; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (ck_startswith(p, "DEVNAME=")) {
                        size_t n = strcspn(p + 8, "\n");
                        *ret = strndup(p + 8, n);
                        return *ret ? 0 : -ENOMEM;
                }
        *ret = strdup("?");
        return *ret ? 0 : -ENOMEM;
}

/* Is uuid the dm uuid cryptsetup gives the dm-integrity device it makes for the LUKS2 volume
 * whose uuid is luks2_uuid ("CRYPT-LUKS2-<hex>-<name>")? cryptsetup 2.7 names it
 * "CRYPT-INTEGRITY-<hex>-<name>_dif", older releases "CRYPT-SUBDEV-<hex>-…": the same <hex>,
 * so that a dm-integrity device of another volume or of integritysetup does not count. */
static bool integrity_of(const char *uuid, const char *luks2_uuid)
{
        const char *hex = luks2_uuid + strlen("CRYPT-LUKS2-"), *dash = strchr(hex, '-'), *rest;

        if (!dash || dash == hex)
                return false;
        if (ck_startswith(uuid, "CRYPT-INTEGRITY-"))
                rest = uuid + strlen("CRYPT-INTEGRITY-");
        else if (ck_startswith(uuid, "CRYPT-SUBDEV-"))
                rest = uuid + strlen("CRYPT-SUBDEV-");
        else
                return false;
        return strncmp(rest, hex, (size_t)(dash - hex + 1)) == 0;
}

/* A LUKS2 mapping (dm uuid luks2_uuid) has integrity when its only underlying device is the
 * dm-integrity device cryptsetup made for it (integrity_of). When it has, *ret_slave is that
 * device's kernel name ("dm-0"). */
static int luks2_has_integrity(int rootfd, int devfd, const char *luks2_uuid, bool *ret, char **ret_slave,
                               struct ck_error **reterr)
{
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_free_ char *slave = NULL, *uuid = NULL;
        _cleanup_close_ int sfd = -EBADF;
        char path[300];
        struct dirent *de;
        int r;

        d = ck_opendir_at(devfd, "slaves");
        if (!d)
                return ck_error_errno(reterr, -errno, "cannot list the device's slaves in sysfs");
        while ((errno = 0, de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (slave) { /* more than one: not the layout cryptsetup makes */
                        *ret = false;
                        return 0;
                }
                slave = strdup(de->d_name);
                if (!slave)
                        return -ENOMEM;
        }
        if (errno != 0)
                return ck_error_errno(reterr, -errno, "cannot list the device's slaves in sysfs");
        if (!slave) {
                *ret = false;
                return 0;
        }
        (void)snprintf(path, sizeof(path), "class/block/%s", slave);
        sfd = ck_open_in_root(rootfd, path, O_RDONLY | O_DIRECTORY, 0);
        if (sfd < 0)
                return ck_error_errno(reterr, sfd, "cannot open %s in sysfs", path);
        r = attr_read(sfd, "dm/uuid", &uuid, reterr);
        if (r < 0)
                return r;
        *ret = uuid && integrity_of(uuid, luks2_uuid);
        if (*ret)
                *ret_slave = TAKE_PTR(slave);
        return 0;
}

/* The names the kernel may give a LUKS2-with-integrity volume in its messages: the dm-crypt
 * device's kernel and dm names and the dm-integrity device's kernel name; NULL-terminated. */
static char **devs_new(const char *crypt, const char *dmname, const char *integrity)
{
        char **v = calloc(4, sizeof(*v));
        size_t n = 0;

        if (!v)
                return NULL;
        if (!(v[n++] = strdup(crypt)) || (dmname && !(v[n++] = strdup(dmname))) ||
            !(v[n++] = strdup(integrity))) {
                conkerd_storage_devs_free(v);
                return NULL;
        }
        return v;
}

void conkerd_storage_devs_free(char **devs)
{
        for (size_t i = 0; devs && devs[i]; i++)
                free(devs[i]);
        free(devs);
}

/* Judges the block device dev: fills *ret_ok, a description in parentheses and, for LUKS2 with
 * integrity, the device names (devs_new). */
static int block_judge(const char *sysfs, dev_t dev, bool *ret_ok, char **ret_what, char ***ret_devs,
                       struct ck_error **reterr)
{
        _cleanup_close_ int rootfd = -EBADF, devfd = -EBADF;
        _cleanup_free_ char *name = NULL, *uuid = NULL, *dmname = NULL, *backing = NULL, *slave = NULL;
        _cleanup_(conkerd_storage_devs_freep) char **devs = NULL;
        char path[64], *what = NULL;
        bool ok = false, integ = false;
        int r;

        rootfd = open(sysfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return ck_error_errno(reterr, -errno, "cannot open %s", sysfs);
        (void)snprintf(path, sizeof(path), "dev/block/%u:%u", major(dev), minor(dev));
        devfd = ck_open_in_root(rootfd, path, O_RDONLY | O_DIRECTORY, 0);
        if (devfd == -ENOENT) {
                *ret_ok = false;
                *ret_what = strdup("not a block device");
                return *ret_what ? 0 : -ENOMEM;
        }
        if (devfd < 0)
                return ck_error_errno(reterr, devfd, "cannot open %s/%s", sysfs, path);

        r = dev_name(devfd, &name, reterr);
        if (r < 0)
                return r;
        r = attr_read(devfd, "dm/uuid", &uuid, reterr);
        if (r >= 0)
                r = attr_read(devfd, "dm/name", &dmname, reterr);
        if (r >= 0 && !uuid)
                r = attr_read(devfd, "loop/backing_file", &backing, reterr);
        if (r < 0)
                return r;

        if (backing)
                r = asprintf(&what, "%s: a loop device over %s, not dm-crypt with integrity", name, backing);
        else if (!uuid)
                r = asprintf(&what, "%s: not dm-crypt with integrity", name);
        else if (!ck_startswith(uuid, "CRYPT-"))
                r = asprintf(&what, "%s %s: device-mapper but not dm-crypt", name, dmname ? dmname : "?");
        else if (!ck_startswith(uuid, "CRYPT-LUKS2-"))
                r = asprintf(&what, "%s %s: dm-crypt but not LUKS2 with integrity", name,
                             dmname ? dmname : "?");
        else {
                r = luks2_has_integrity(rootfd, devfd, uuid, &integ, &slave, reterr);
                if (r < 0)
                        return r;
                ok = integ;
                if (integ && ret_devs) {
                        devs = devs_new(name, dmname, slave);
                        if (!devs)
                                return -ENOMEM;
                }
                if (integ)
                        r = asprintf(&what, "%s %s: LUKS2 with integrity over %s", name,
                                     dmname ? dmname : "?", slave);
                else
                        r = asprintf(&what, "%s %s: LUKS2 without integrity", name, dmname ? dmname : "?");
        }
        if (r < 0)
                return -ENOMEM;
        *ret_ok = ok;
        *ret_what = what;
        if (ret_devs)
                *ret_devs = TAKE_PTR(devs);
        return 0;
}

int conkerd_storage_check(const char *data_dir, const struct conkerd_storage_roots *roots, bool *ret_ok,
                          char **ret_what, char ***ret_devs, struct ck_error **reterr)
{
        char **devs = NULL;
        _cleanup_free_ char *fstype = NULL, *source = NULL, *dev = NULL;
        char *what = NULL;
        struct stat st;
        bool ok = false;
        int r;

        if (stat(data_dir, &st) < 0)
                return ck_error_errno(reterr, -errno, "cannot stat %s", data_dir);
        r = mount_find(roots->mountinfo, st.st_dev, &fstype, &source, reterr);
        if (r < 0)
                return ck_error_prefix(reterr, r, "cannot find the filesystem of %s", data_dir);

        if (strcmp(fstype, "tmpfs") == 0 || strcmp(fstype, "ramfs") == 0) {
                ok = true;
                r = asprintf(&what, "%s (TD memory)", fstype);
        } else if (strcmp(fstype, "rootfs") == 0) {
                /* The kernel's initial root, visible only when nothing was mounted over it: the
                 * initramfs is the root filesystem (the TD image), held in TD memory. */
                ok = true;
                r = asprintf(&what, "rootfs (TD memory: the initramfs)");
        } else {
                r = block_judge(roots->sysfs, st.st_dev, &ok, &dev, ret_devs ? &devs : NULL, reterr);
                if (r < 0)
                        return ck_error_prefix(reterr, r, "cannot tell what %s is on", data_dir);
                r = asprintf(&what, "%s on %s (%s)", fstype, source, dev);
        }
        if (r < 0) {
                conkerd_storage_devs_free(devs);
                return -ENOMEM;
        }
        *ret_ok = ok;
        if (ret_devs)
                *ret_devs = devs;
        if (ret_what)
                *ret_what = what;
        else
                free(what);
        return 0;
}

char *conkerd_storage_describe(const char *data_dir, bool ok, const char *what)
{
        char *line = NULL;

        if (asprintf(&line, "data dir %s: %s: %s", data_dir, what,
                     ok ? "host-proof" : "NOT host-proof (the host can read and rewrite it)") < 0)
                return NULL;
        return line;
}
