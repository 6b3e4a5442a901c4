/* SQLite persistence of tasks, their events and their volumes (see store.h). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite.h"
#include "task-store.h"

void (*task_store_test_hook)(const char *point);

struct task_store {
        sqlite3 *db;
        pthread_mutex_t lock; /* one transaction at a time on the shared connection */
};

static const char schema[] = "CREATE TABLE IF NOT EXISTS tasks ("
                             "  id TEXT PRIMARY KEY NOT NULL,"
                             "  seq INTEGER NOT NULL UNIQUE,"
                             "  name TEXT NOT NULL,"
                             "  created_ns INTEGER NOT NULL,"
                             "  status TEXT NOT NULL,"
                             "  request TEXT NOT NULL,"
                             "  image TEXT);"
                             "CREATE TABLE IF NOT EXISTS events ("
                             "  n INTEGER PRIMARY KEY AUTOINCREMENT,"
                             "  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
                             "  type TEXT NOT NULL,"
                             "  time_ns INTEGER NOT NULL,"
                             "  message TEXT NOT NULL);"
                             "CREATE INDEX IF NOT EXISTS events_task ON events(task_id, n);"
                             "CREATE TABLE IF NOT EXISTS volumes ("
                             "  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
                             "  name TEXT NOT NULL,"
                             "  PRIMARY KEY (task_id, name));";

static void hook(const char *point)
{
        if (task_store_test_hook)
                task_store_test_hook(point);
}

static int db_error(struct task_store *s, struct ck_error **reterr, const char *what)
{
        return ck_error_set(reterr, -EIO, "task store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int prepare(struct task_store *s, const char *sql, sqlite3_stmt **ret, struct ck_error **reterr)
{
        if (sqlite3_prepare_v2(s->db, sql, -1, ret, NULL) != SQLITE_OK)
                return db_error(s, reterr, "prepare");
        return 0;
}

int task_store_open(const char *path, struct task_store **ret, struct ck_error **reterr)
{
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        struct task_store *s;
        int r;

        r = ck_sqlite_open(path, &db, reterr);
        if (r < 0)
                return r;
        /* WAL with synchronous=NORMAL: a commit survives any crash of conkerd (the WAL is
         * written before COMMIT returns) and the database is never corrupted; only a power
         * loss may drop the last commits, after which every container is gone too and recovery
         * fails the tasks anyway. It saves an fsync per event on the start path. */
        r = ck_sqlite_exec(db, "PRAGMA synchronous=NORMAL;", reterr);
        if (r >= 0)
                r = ck_sqlite_exec(db, schema, reterr);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->db = TAKE_PTR(db);
        *ret = s;
        return 0;
}

void task_store_free(struct task_store *s)
{
        if (!s)
                return;
        sqlite3_close_v2(s->db);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

/* Runs fn inside BEGIN IMMEDIATE … COMMIT under the store lock; rolls back on failure. */
static int transact(struct task_store *s, int (*fn)(struct task_store *, const void *, struct ck_error **),
                    const void *arg, struct ck_error **reterr)
{
        int r;

        pthread_mutex_lock(&s->lock);
        r = ck_sqlite_exec(s->db, "BEGIN IMMEDIATE", reterr);
        if (r >= 0) {
                r = fn(s, arg, reterr);
                if (r >= 0) {
                        hook("commit");
                        r = ck_sqlite_exec(s->db, "COMMIT", reterr);
                }
                if (r < 0)
                        (void)ck_sqlite_exec(s->db, "ROLLBACK", NULL);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int insert_event(struct task_store *s, const char *id, const struct task_store_event *e,
                        struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = prepare(s, "INSERT INTO events (task_id, type, time_ns, message) VALUES (?, ?, ?, ?)", &st,
                    reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, e->time_ns);
        sqlite3_bind_text(st, 4, e->message, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return db_error(s, reterr, "insert event");
        return 0;
}

struct insert_args {
        const struct task_store_task *t;
        const struct task_store_event *first;
};

static int do_insert(struct task_store *s, const void *arg, struct ck_error **reterr)
{
        const struct insert_args *a = arg;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = prepare(s,
                    "INSERT INTO tasks (id, seq, name, created_ns, status, request, image) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &st, reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, a->t->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, a->t->seq);
        sqlite3_bind_text(st, 3, a->t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, a->t->created_ns);
        sqlite3_bind_text(st, 5, a->first->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, a->t->request, -1, SQLITE_STATIC);
        if (a->t->image)
                sqlite3_bind_text(st, 7, a->t->image, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, 7);
        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT)
                return ck_error_set(reterr, -EEXIST, "task %s already exists", a->t->id);
        if (rc != SQLITE_DONE)
                return db_error(s, reterr, "insert task");
        hook("insert:task");
        return insert_event(s, a->t->id, a->first, reterr);
}

int task_store_insert(struct task_store *s, const struct task_store_task *t,
                      const struct task_store_event *first, struct ck_error **reterr)
{
        struct insert_args a = {t, first};
        return transact(s, do_insert, &a, reterr);
}

struct event_args {
        const char *id;
        const struct task_store_event *e;
};

static int do_append(struct task_store *s, const void *arg, struct ck_error **reterr)
{
        const struct event_args *a = arg;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = insert_event(s, a->id, a->e, reterr);
        if (r < 0)
                return r;
        hook("append:inserted");
        r = prepare(s, "UPDATE tasks SET status = ? WHERE id = ?", &st, reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, a->e->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return db_error(s, reterr, "update status");
        if (sqlite3_changes(s->db) != 1)
                return ck_error_set(reterr, -ENOENT, "task %s is not in the store", a->id);
        return 0;
}

int task_store_append_event(struct task_store *s, const char *id, const struct task_store_event *e,
                            struct ck_error **reterr)
{
        struct event_args a = {id, e};
        return transact(s, do_append, &a, reterr);
}

struct kv_args {
        const char *sql;
        const char *a, *b;
        bool must_change;
};

static int do_exec2(struct task_store *s, const void *arg, struct ck_error **reterr)
{
        const struct kv_args *a = arg;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = prepare(s, a->sql, &st, reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, a->a, -1, SQLITE_STATIC);
        if (a->b)
                sqlite3_bind_text(st, 2, a->b, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return db_error(s, reterr, "update");
        if (a->must_change && sqlite3_changes(s->db) == 0)
                return ck_error_set(reterr, -ENOENT, "task is not in the store");
        return 0;
}

int task_store_set_image(struct task_store *s, const char *id, const char *image_json,
                         struct ck_error **reterr)
{
        struct kv_args a = {"UPDATE tasks SET image = ?1 WHERE id = ?2", image_json, id, true};
        return transact(s, do_exec2, &a, reterr);
}

int task_store_add_volume(struct task_store *s, const char *id, const char *name, struct ck_error **reterr)
{
        struct kv_args a = {"INSERT OR IGNORE INTO volumes (task_id, name) VALUES (?1, ?2)", id, name,
                            false};
        return transact(s, do_exec2, &a, reterr);
}

int task_store_delete(struct task_store *s, const char *id, struct ck_error **reterr)
{
        /* Events and volumes go with the task through ON DELETE CASCADE. */
        struct kv_args a = {"DELETE FROM tasks WHERE id = ?1", id, NULL, false};
        return transact(s, do_exec2, &a, reterr);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? strdup((const char *)t) : NULL;
}

void task_store_task_clear(struct task_store_task *t)
{
        free(t->id);
        free(t->name);
        free(t->status);
        free(t->request);
        free(t->image);
        for (size_t i = 0; i < t->n_events; i++) {
                free(t->events[i].type);
                free(t->events[i].message);
        }
        free(t->events);
        for (size_t i = 0; i < t->n_volumes; i++)
                free(t->volumes[i]);
        free(t->volumes);
        *t = (struct task_store_task){0};
}

static int load_children(struct task_store *s, struct task_store_task *t, struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *ev = NULL, *vol = NULL;
        int r, rc;

        r = prepare(s, "SELECT type, time_ns, message FROM events WHERE task_id = ? ORDER BY n", &ev,
                    reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(ev, 1, t->id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(ev)) == SQLITE_ROW) {
                struct task_store_event *n = realloc(t->events, (t->n_events + 1) * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                t->events = n;
                n[t->n_events] = (struct task_store_event){col_dup(ev, 0), sqlite3_column_int64(ev, 1),
                                                           col_dup(ev, 2)};
                t->n_events++;
        }
        if (rc != SQLITE_DONE)
                return db_error(s, reterr, "load events");

        r = prepare(s, "SELECT name FROM volumes WHERE task_id = ? ORDER BY rowid", &vol, reterr);
        if (r < 0)
                return r;
        sqlite3_bind_text(vol, 1, t->id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(vol)) == SQLITE_ROW) {
                char **n = realloc(t->volumes, (t->n_volumes + 2) * sizeof(char *));
                if (!n)
                        return -ENOMEM;
                t->volumes = n;
                n[t->n_volumes++] = col_dup(vol, 0);
                n[t->n_volumes] = NULL;
        }
        if (rc != SQLITE_DONE)
                return db_error(s, reterr, "load volumes");
        return 0;
}

int task_store_load(struct task_store *s, struct task_store_task **ret, size_t *ret_n,
                    struct ck_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        struct task_store_task *v = NULL;
        size_t n = 0;
        int r, rc = SQLITE_DONE;

        pthread_mutex_lock(&s->lock);
        r = prepare(s, "SELECT id, seq, name, created_ns, status, request, image FROM tasks ORDER BY seq",
                    &st, reterr);
        while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct task_store_task *nv = realloc(v, (n + 1) * sizeof(*v));
                if (!nv) {
                        r = -ENOMEM;
                        break;
                }
                v = nv;
                v[n] = (struct task_store_task){
                        .id = col_dup(st, 0),
                        .seq = sqlite3_column_int64(st, 1),
                        .name = col_dup(st, 2),
                        .created_ns = sqlite3_column_int64(st, 3),
                        .status = col_dup(st, 4),
                        .request = col_dup(st, 5),
                        .image = col_dup(st, 6),
                };
                n++;
                if (!v[n - 1].id || !v[n - 1].name || !v[n - 1].status || !v[n - 1].request)
                        r = -ENOMEM;
                else
                        r = load_children(s, &v[n - 1], reterr);
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = db_error(s, reterr, "load tasks");
        pthread_mutex_unlock(&s->lock);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        task_store_task_clear(&v[i]);
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
