/* Unit tests for ck_sqlite_open(): the file it creates is 0600, a symlink or a non-regular file
 * at its path is refused (never followed), and every connection runs with the settings the
 * stores rely on (WAL, synchronous=FULL, foreign keys, a busy timeout). */
#include "cmocka-wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "parse.h"
#include "sqlite.h"

static char tmpdir[64];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-test-sqlite-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return ck_rm_rf_at(AT_FDCWD, tmpdir);
}

static void pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
}

static void test_settings_and_mode(void **state)
{
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        char path[128], v[32];
        struct stat st;
        uint64_t ms = 0;

        snprintf(path, sizeof(path), "%s/t.db", tmpdir);
        assert_int_equal(ck_sqlite_open(path, &db, NULL), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        pragma_text(db, "PRAGMA journal_mode", v, sizeof(v));
        assert_string_equal(v, "wal");
        pragma_text(db, "PRAGMA synchronous", v, sizeof(v));
        assert_string_equal(v, "2"); /* FULL */
        pragma_text(db, "PRAGMA foreign_keys", v, sizeof(v));
        assert_string_equal(v, "1");
        pragma_text(db, "PRAGMA busy_timeout", v, sizeof(v));
        assert_int_equal(ck_parse_uint(v, UINT32_MAX, &ms), 0);
        assert_true(ms >= 1000);
}

/* A symlink at the database path (to an empty file beside it, which SQLite would take for a new
 * database and write to) and a FIFO are refused; the link's target is left untouched. */
static void test_refuses_symlink_and_fifo(void **state)
{
        _cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sqlite3 *db = NULL;
        char path[128], canary[128];
        struct stat st;

        snprintf(canary, sizeof(canary), "%s/canary", tmpdir);
        assert_int_equal(ck_write_file_atomic(dfd, "canary", "", 0, 0600, NULL), 0);
        assert_int_equal(symlinkat(canary, dfd, "link.db"), 0);
        snprintf(path, sizeof(path), "%s/link.db", tmpdir);
        assert_int_equal(ck_sqlite_open(path, &db, NULL), -ELOOP);
        assert_null(db);
        assert_int_equal(stat(canary, &st), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(faccessat(dfd, "canary-wal", F_OK, 0), -1);

        assert_int_equal(mkfifoat(dfd, "fifo.db", 0600), 0);
        snprintf(path, sizeof(path), "%s/fifo.db", tmpdir);
        assert_int_equal(ck_sqlite_open(path, &db, NULL), -ELOOP);
        assert_null(db);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_settings_and_mode, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuses_symlink_and_fifo, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
