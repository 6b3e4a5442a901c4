/* Task route handlers. Everything here runs on the event loop and returns quickly, except
 * deletion, which stops a container (up to stop-timeout) and so runs as a worker job whose
 * reply is sent from the loop when it finishes. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "json.h"
#include "log.h"
#include "task.h"

void api_route_create(struct api_server *s, struct evhttp_request *req)
{
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *id = NULL;
        json_t *data = NULL;
        uint8_t *body;
        int r;

        body = evbuffer_pullup(in, (ev_ssize_t)len);
        if (!body && len) {
                api_reply(req, 500, "out of memory", NULL);
                return;
        }
        r = task_manager_create(s->m, body ? body : (const uint8_t *)"", len, &id, &e);
        /* The body holds the registry password: wipe it now rather than when evhttp frees it. */
        if (body)
                OPENSSL_cleanse(body, len);
        if (r < 0) {
                api_reply_error(req, r, e, "create");
                return;
        }
        r = task_manager_get_json(s->m, id, &data, &e);
        if (r < 0) {
                /* Deleted in between; still report the ID. */
                data = json_pack("{s:s}", "Id", id);
        } else {
                /* The creation answer is short: what the client needs to follow the task. */
                json_t *brief =
                        json_pack("{s:O,s:O,s:O}", "Id", json_object_get(data, "Id"), "Name",
                                  json_object_get(data, "Name"), "Status", json_object_get(data, "Status"));
                json_decref(data);
                data = brief;
        }
        api_reply(req, 200, "task created", data);
}

void api_route_get(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        _cleanup_error_ struct ck_error *e = NULL;
        json_t *data = NULL;
        int r = task_manager_get_json(s->m, ref, &data, &e);

        if (r < 0) {
                api_reply_error(req, r, e, "get");
                return;
        }
        api_reply(req, 200, "ok", data);
}

void api_route_list(struct api_server *s, struct evhttp_request *req)
{
        _cleanup_error_ struct ck_error *e = NULL;
        json_t *data = NULL;
        int r = task_manager_list_json(s->m, &data, &e);

        if (r < 0) {
                api_reply_error(req, r, e, "list");
                return;
        }
        api_reply(req, 200, "ok", data);
}

void api_route_events(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        _cleanup_error_ struct ck_error *e = NULL;
        json_t *data = NULL;
        int r = task_manager_events_json(s->m, ref, &data, &e);

        if (r < 0) {
                api_reply_error(req, r, e, "events");
                return;
        }
        api_reply(req, 200, "ok", data);
}

void api_route_cancel(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        _cleanup_error_ struct ck_error *e = NULL;
        _cleanup_free_ char *id = NULL;
        int r = task_manager_cancel(s->m, ref, &id, &e);

        if (r < 0) {
                api_reply_error(req, r, e, "cancel");
                return;
        }
        api_reply(req, 200, "cancel requested; the task stops at its next step",
                  json_pack("{s:s,s:s}", "Id", id, "Status", "Cancelling"));
}

/* ---- worker jobs ---- */

struct api_job {
        struct api_job *next;
        struct api_server *s;
        struct evhttp_request *req; /* stays valid until replied to, even if the client left */
        char *ref;                  /* NULL: the newest task */
        char *id;
        int result;
        struct ck_error *err;
};

static void job_free(struct api_job *j)
{
        free(j->ref);
        free(j->id);
        ck_error_free(j->err);
        free(j);
}

static void on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
        struct api_server *s = arg;
        struct api_job *list;

        pthread_mutex_lock(&s->jobs_lock);
        list = TAKE_PTR(s->jobs_done);
        pthread_mutex_unlock(&s->jobs_lock);
        while (list) {
                struct api_job *j = list;
                list = j->next;
                if (j->result < 0)
                        api_reply_error(j->req, j->result, j->err, "delete");
                else
                        api_reply(j->req, 200, "task deleted", json_pack("{s:s}", "Id", j->id));
                job_free(j);
        }
}

static void *job_delete_main(void *arg)
{
        struct api_job *j = arg;
        struct api_server *s = j->s;

        j->result = task_manager_delete(s->m, j->ref, &j->id, &j->err);
        pthread_mutex_lock(&s->jobs_lock);
        j->next = s->jobs_done;
        s->jobs_done = j;
        /* Before the count drops: once it is zero the server may be freed. */
        event_active(s->jobs_event, EV_READ, 0);
        s->jobs_running--;
        pthread_cond_broadcast(&s->jobs_cond);
        pthread_mutex_unlock(&s->jobs_lock);
        return NULL;
}

int api_jobs_init(struct api_server *s)
{
        pthread_mutex_init(&s->jobs_lock, NULL);
        pthread_cond_init(&s->jobs_cond, NULL);
        s->jobs_event = event_new(s->base, -1, 0, on_jobs_done, s);
        return s->jobs_event ? 0 : -ENOMEM;
}

void api_jobs_shutdown(struct api_server *s)
{
        pthread_mutex_lock(&s->jobs_lock);
        while (s->jobs_running)
                pthread_cond_wait(&s->jobs_cond, &s->jobs_lock);
        pthread_mutex_unlock(&s->jobs_lock);
        /* Answer what finished: the reply is flushed as far as it goes before evhttp_free(), and
         * answering also frees requests whose client already left. */
        on_jobs_done(-1, 0, s);
}

void api_route_delete(struct api_server *s, struct evhttp_request *req, const char *ref)
{
        struct api_job *j = calloc(1, sizeof(*j));
        pthread_attr_t attr;
        pthread_t th;
        int r;

        if (!j || (ref && !(j->ref = strdup(ref)))) {
                free(j);
                api_reply(req, 500, "out of memory", NULL);
                return;
        }
        j->s = s;
        j->req = req;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&s->jobs_lock);
        s->jobs_running++;
        r = pthread_create(&th, &attr, job_delete_main, j);
        if (r != 0)
                s->jobs_running--;
        pthread_mutex_unlock(&s->jobs_lock);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                log_error("cannot start a delete worker: %s", strerror(r));
                job_free(j);
                api_reply(req, 500, "internal error; see the conkerd log", NULL);
        }
}
