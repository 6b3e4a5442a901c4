/* conker-shim: its state files in the state dir, state.json (rewritten on every change) and
 * exit.json (written at every exit of the container), each replaced atomically; the format is in
 * src/runtime/shim-proto.h. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "shim.h"

void state_write(struct shim *s)
{
        _cleanup_json_ json_t *j = shim_state_to_json(&s->st);
        _cleanup_free_ char *txt = j ? ck_json_dump(j) : NULL;
        _cleanup_error_ struct ck_error *err = NULL;

        /* The state dir is under the run dir (tmpfs): atomic against our own crash is what
         * matters, an fsync would buy nothing. */
        if (!txt || ck_write_file_replace(s->state_dfd, SHIM_STATE_NAME, txt, strlen(txt), 0600, &err) < 0)
                log_error("cannot write state: %s", ck_error_message(err, -ENOMEM));
}

void exit_write(struct shim *s)
{
        _cleanup_json_ json_t *j =
                json_pack("{s:i,s:I,s:b,s:i}", "exit_code", s->st.st.exit_code, "finished_at",
                          (json_int_t)s->st.st.finished_at_ns, "oom_killed", s->st.st.oom_killed,
                          "restart_count", (int)s->st.st.restart_count);
        _cleanup_free_ char *txt = j ? ck_json_dump(j) : NULL;
        _cleanup_error_ struct ck_error *err = NULL;

        if (!txt || ck_write_file_replace(s->state_dfd, SHIM_EXIT_NAME, txt, strlen(txt), 0600, &err) < 0)
                log_error("cannot write exit status: %s", ck_error_message(err, -ENOMEM));
}
