/* SQLite glue: cleanup functions and a checked open in WAL mode. */
#pragma once

#include <sqlite3.h>

#include "cleanup.h"
#include "error.h"

DEFINE_POINTER_CLEANUP(sqlite3_stmt, sqlite3_finalize, sqlite3_finalize)
DEFINE_POINTER_CLEANUP(sqlite3, sqlite3_close_v2, sqlite3_close)
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Opens (creating if needed) the database at path, mode 0600, with WAL journaling,
 * synchronous=FULL, foreign keys on and a busy timeout. */
int ck_sqlite_open(const char *path, sqlite3 **ret, struct ck_error **reterr);
/* Runs SQL without results (schema, pragmas, BEGIN/COMMIT). */
int ck_sqlite_exec(sqlite3 *db, const char *sql, struct ck_error **reterr);
