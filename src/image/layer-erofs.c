/* The EROFS layer format: its names, and mounting a layer image for the rootfs overlay (the probe
 * that chooses it is in layer-erofs-writer.c).
 *
 * A layer image is never mounted where anyone can see it: fsopen("erofs") with the image file
 * as source gives a detached read-only mount, which is handed to overlayfs by file descriptor
 * (fsconfig FSCONFIG_SET_FD "lowerdir+") and closed; the EROFS mount then lives exactly as
 * long as the overlay that uses it, and nothing is left to clean up on a crash. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "erofs-internal.h"
#include "log.h"
#include "store-internal.h"

static const char *const format_names[] = {
        [IMAGE_LAYER_AUTO] = "auto",
        [IMAGE_LAYER_DIR] = "dir",
        [IMAGE_LAYER_EROFS] = "erofs",
};

int image_layer_format_from_string(const char *s)
{
        for (size_t i = 0; s && i < ELEMENTSOF(format_names); i++)
                if (strcmp(s, format_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

const char *image_layer_format_to_string(enum image_layer_format f)
{
        return (size_t)f < ELEMENTSOF(format_names) ? format_names[f] : "unknown";
}

static int erofs_mount_source(const char *source, int *ret_fd)
{
        _cleanup_close_ int fsfd = -1;
        int mfd;

        fsfd = (int)syscall(SYS_fsopen, "erofs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return -errno;
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
            syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        /* Not nodev: overlayfs opens a lower device node through the lower mount, and a layer's
         * device nodes must behave as they do in a directory layer (the device cgroup decides). */
        mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
        if (mfd < 0)
                return -errno;
        *ret_fd = mfd;
        return 0;
}

int image_erofs_mount(const char *path, int *ret_fd, struct ck_error **reterr)
{
        int r = erofs_mount_source(path, ret_fd);

        if (r < 0)
                return ck_error_errno(reterr, r, "cannot mount the EROFS layer %s", path);
        return 0;
}
