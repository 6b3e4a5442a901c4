/* The protocol between conkerd (the runtime module) and conker-shim, and the shim's state files.
 *
 * Control socket: <run_dir>/shims/<id>/shim.sock (mode 0600). One request per connection; each
 * message is a frame: a 4-byte little-endian length (1..SHIM_MSG_MAX) followed by that many
 * bytes of JSON. Requests: {"op":"state"} | {"op":"stop","timeout":<s>} | {"op":"delete"}.
 * Responses: {"ok":true,"state":{...}} or {"ok":false,"error":"..."}.
 *
 * State files in the same directory, replaced atomically: state.json (the state object below,
 * rewritten on every change) and exit.json ({"exit_code","finished_at","oom_killed",
 * "restart_count"}, written at every exit of the container), so an exit that happened while
 * nobody was connected is still known.
 *
 * Spare shim (shim-spare.c): conkerd keeps one `conker-shim --spare` started ahead, holding one end
 * of a SOCK_SEQPACKET socketpair on fd 3. Its assignment is one message: the command line a shim
 * would have been started with (argv without argv[0]), each argument NUL-terminated, with the
 * shim's log fd attached (SCM_RIGHTS). From then on fd 3 is the shim's ready fd. EOF before an
 * assignment (conkerd gone or done) makes the spare exit. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "error.h"
#include "runtime.h"

#define SHIM_MSG_MAX     65536u
#define SHIM_STATE_MAX   65536u
#define SHIM_SOCK_NAME   "shim.sock"
#define SHIM_STATE_NAME  "state.json"
#define SHIM_EXIT_NAME   "exit.json"
#define SHIM_TIMEOUT_MAX 3600u

enum shim_op { SHIM_OP_STATE, SHIM_OP_STOP, SHIM_OP_DELETE, _SHIM_OP_MAX };
const char *shim_op_to_string(enum shim_op op);
int shim_op_from_string(const char *s);
int runtime_status_from_string(const char *s);

struct shim_request {
        enum shim_op op;
        unsigned timeout_s; /* stop */
};

struct shim_state {
        struct runtime_state st; /* ip is not used by the shim */
        pid_t shim_pid;
};

/* Frame header check: the length must be 1..SHIM_MSG_MAX. */
int shim_frame_length(const uint8_t hdr[4], size_t *ret_len);
/* Blocking frame IO; the caller sets socket timeouts. ret is malloc'd, NUL-terminated. */
int shim_frame_read(int fd, uint8_t **ret, size_t *ret_len);
int shim_frame_write(int fd, const void *buf, size_t len);

int shim_request_parse(const uint8_t *buf, size_t len, struct shim_request *ret, struct ck_error **reterr);
char *shim_request_format(const struct shim_request *req);

json_t *shim_state_to_json(const struct shim_state *s);
int shim_state_from_json(json_t *j, struct shim_state *ret, struct ck_error **reterr);
/* state.json of a shim directory. */
int shim_state_read(int dirfd, struct shim_state *ret, struct ck_error **reterr);

#define SHIM_ASSIGN_ARGS_MAX 32u

/* The assignment message of argv[0..n-1] (each non-empty, n <= SHIM_ASSIGN_ARGS_MAX, total <=
 * SHIM_MSG_MAX). Returns a malloc'd buffer (the caller frees it) and its length in *ret_len. */
int shim_assign_format(char *const *argv, size_t n, uint8_t **ret, size_t *ret_len);
/* Splits an assignment message in place: ret_argv[0] = argv0, then pointers into buf (which must
 * outlive them), NULL-terminated; ret_argv has room for SHIM_ASSIGN_ARGS_MAX + 2 entries.
 * -EBADMSG unless buf is 1..SHIM_MSG_MAX bytes of non-empty NUL-terminated strings. */
int shim_assign_parse(uint8_t *buf, size_t len, char *argv0, char *ret_argv[SHIM_ASSIGN_ARGS_MAX + 2],
                      int *ret_argc);

/* Parses a response frame: state on success, the shim's error otherwise. */
int shim_response_parse(const uint8_t *buf, size_t len, struct shim_state *ret, struct ck_error **reterr);

/* The "oom_kill N" counter of a cgroup v2 memory.events or v1 memory.oom_control file. */
int shim_parse_oom_kill(const char *buf, size_t len, uint64_t *ret);

/* Connects to sock_path, sends req, waits up to io_timeout_s for the reply. */
int shim_call(const char *sock_path, const struct shim_request *req, unsigned io_timeout_s,
              struct shim_state *ret, struct ck_error **reterr);
