/* SQLite glue. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite.h"

int ck_sqlite_exec(sqlite3 *db, const char *sql, struct ck_error **reterr)
{
        char *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

        if (rc != SQLITE_OK) {
                int r = ck_error_set(reterr, -EIO, "database: %s", msg ? msg : sqlite3_errstr(rc));
                sqlite3_free(msg);
                return r;
        }
        return 0;
}

/* No bulk page-cache allocation per connection: by default each connection mallocs room for 20
 * pages up front (~90 KiB, a separate mmap in conkerd), which its few statements per task never
 * fill; pages are then allocated one at a time as they are read. Measured in conkerd (two
 * connections): -80 KiB of idle RSS. sqlite3_config() only works before SQLite initialises, so
 * this runs before the process's first open; if SQLite was initialised already it is refused
 * (SQLITE_MISUSE) and nothing changes. */
static void sqlite_config_once(void)
{
        (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

int ck_sqlite_open(const char *path, sqlite3 **ret, struct ck_error **reterr)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        sqlite3 *db = NULL;
        struct stat st;
        int fd, rc, r;

        /* Create the file with 0600 before SQLite does, so it never exists world-readable. Only
         * when it is new: closing an fd of a file drops every POSIX lock this process holds on
         * it, and another connection of ours (conkerd has two) would lose its locks, letting a
         * second process (the pull helper) checkpoint and reset the WAL under it. */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
                return ck_error_errno(reterr, -errno, "cannot open database %s", path);
        if (fd < 0 && (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)))
                return ck_error_set(reterr, -ELOOP, "cannot open database %s: not a regular file", path);
        if (fd >= 0)
                close(fd);

        (void)pthread_once(&once, sqlite_config_once);
        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = ck_error_set(reterr, -EIO, "cannot open database %s: %s", path, sqlite3_errstr(rc));
                sqlite3_close_v2(db);
                return r;
        }
        sqlite3_busy_timeout(db, 5000);
        r = ck_sqlite_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                           reterr);
        if (r < 0) {
                sqlite3_close_v2(db);
                return r;
        }
        *ret = db;
        return 0;
}
