/* Snapshots (containerd's word): the layers of the store, one per diff_id, in the format the
 * store was configured with (a backend: layer-dir.c or layer-erofs.c, see store-internal.h).
 *
 * Invariant: layers/<n> (a directory or an EROFS image file) with a ready row in `layers` is a
 * complete layer whose uncompressed stream had the recorded diff_id: unpack.c writes into
 * layers/<n>.tmp and the rename happens after both digests were checked, so a layer whose blob
 * fails its digest or diff_id is never visible, and nothing of it is ever mounted (layers are
 * mounted only when a rootfs is assembled, rootfs.c). <n> is a short number from the `layers`
 * table so that overlay mount data stays under one page. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "manifest.h"
#include "parse.h"
#include "sqlite.h"
#include "ssl.h"
#include "store-internal.h"

/* ---- layers ----------------------------------------------------------------------------- */

/* Returns 1 and the number when diff_id has a ready layer, 0 when it has none. */
int image_layer_lookup(struct image_store *s, const char *diff_id, int64_t *ret_n, struct ck_error **reterr)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;

        if (sqlite3_prepare_v2(s->db, "SELECT n FROM layers WHERE diff_id = ? AND ready = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return image_store_db_error(s, reterr);
        sqlite3_bind_text(st, 1, diff_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return image_store_db_error(s, reterr);
        *ret_n = sqlite3_column_int64(st, 0);
        return 1;
}

char *image_store_layer_dir(struct image_store *s, const char *diff_id)
{
        _cleanup_db_lock_ struct image_store *db_guard = image_store_db_lock(s);
        char *p = NULL;
        int64_t n = 0;

        if (image_layer_lookup(s, diff_id, &n, NULL) <= 0)
                return NULL;
        if (asprintf(&p, "%s/layers/%" PRId64, s->dir, n) < 0)
                return NULL;
        return p;
}
