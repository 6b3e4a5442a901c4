/* conker-shim's private header: the shim's state (struct shim), the container log's line
 * buffers and the functions its files share. Every function here runs on the shim's one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "error.h"
#include "shim-proto.h"

#define LINE_MAX_BYTES   16384
#define BACKOFF_START_MS 100
#define BACKOFF_MAX_MS   60000
#define BACKOFF_RESET_NS (10LL * 1000000000LL)

/* The longest state dir and log path taken: what is made from them ("/runc.log", ".N" for a
 * rotated log, N < 100) fits the 4 KiB path buffers. */
#define SHIM_PATH_MAX 4000

struct linebuf {
        const char *stream;
        uint8_t data[LINE_MAX_BYTES];
        size_t len;
};

struct shim {
        const char *id, *bundle, *runtime, *root, *log_path, *state_dir, *cgroup;
        uint64_t log_max;
        unsigned log_files;
        bool restart_always;
        bool hide_cgroup2; /* crun on a hybrid cgroup host: see hide_cgroup2() in runtime-run.c */
        int stop_signal;
        int state_dfd;
        int out_r, out_w, err_r, err_w;
        int listen_fd, sig_fd, backoff_fd, kill_fd, pidfd;
        int runtime_fd; /* a spare's sealed copy of the runtime, for the first run only */
        int log_fd;
        uint64_t log_size;
        struct linebuf out_lb, err_lb;
        struct shim_state st;
        bool stopping;
        uint64_t backoff_ms;
        int64_t started_mono_us; /* when the container last started, on the monotonic clock */
};

/* container-log.c */
/* (Re)opens the log file for appending; -errno on failure. */
int log_open(struct shim *s);
/* Writes one JSON line for one line of the container's output, rotating first when it would
 * pass log_max. Errors are dropped: the container runs on without its log. */
void log_line(struct shim *s, const char *stream, const uint8_t *p, size_t n);
/* Logs what is left in lb as a last line without its newline. */
void linebuf_flush(struct shim *s, struct linebuf *lb);
/* Logs what is available on one (non-blocking) pipe, line by line. */
void pipe_drain(struct shim *s, int fd, struct linebuf *lb);

/* state-files.c: a failure is logged, never returned. */
void state_write(struct shim *s);
void exit_write(struct shim *s);

/* runtime-run.c */
/* Runs the runtime with args after its global options, waiting for it. */
int runc(struct shim *s, char *const *args, size_t n, struct ck_error **reterr);
/* Arms the timerfd fd for ms milliseconds (0: at once); clear_timer() disarms it. */
void set_timer(int fd, uint64_t ms);
void clear_timer(int fd);
/* Runs the container (removing one left in the runtime's state first) and records it running. */
int container_start(struct shim *s, struct ck_error **reterr);
void send_signal(struct shim *s, int sig);
/* Reaps every exited child; the init's exit is recorded (with restart=always, a restart is
 * scheduled). */
void reap(struct shim *s);
void wait_init_gone(struct shim *s);
/* The backoff and kill timers fired. */
void on_backoff(struct shim *s);
void on_kill_timer(struct shim *s);

/* control.c */
/* Serves one connection; true when the shim is to exit (after a delete). */
bool on_client(struct shim *s);
/* Binds and listens on <state_dir>/shim.sock; returns the fd or -errno. */
int listen_socket(struct shim *s);

/* spare.c */
/* A sealed memfd copy of the runtime at path, its stat in *ret_st once the file is open (also
 * when the copy then fails); returns the fd (the caller's to close) or -errno. */
int runtime_copy_sealed(const char *path, struct stat *ret_st);
/* Whether path is still the file runtime_copy_sealed() copied (its stat st). */
bool runtime_copy_current(const char *path, const struct stat *st);
/* 1 with the assignment (*ret_buf is the caller's to free), 0 on EOF, -errno: see spare.c. */
int spare_wait(uint8_t **ret_buf, char *ret_argv[SHIM_ASSIGN_ARGS_MAX + 2], int *ret_argc);
