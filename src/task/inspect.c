/* JSON views of a task: the document of GET /container and of each element of GET /containers
 * (the seed's names, types and nesting: Id, ContainerConf, Status, IsCancel, Events[{Action,
 * Message,Time}], ContainerInspect with Docker's field names; docs/openapi.yaml is the schema)
 * and the event list. The request is always rendered redacted. Called with the manager lock held. */
#include <stdio.h>
#include <string.h>

#include "image-info.h"
#include "json.h"
#include "task-internal.h"

static json_t *time_json(int64_t ns)
{
        char buf[48];

        task_time_format(ns, buf, sizeof(buf));
        return json_string(buf);
}

json_t *task_events_to_json(const struct task *t)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < t->n_events; i++) {
                const struct task_event *e = &t->events[i];
                if (json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "Action",
                                                       task_event_type_to_string(e->type), "Message",
                                                       e->message ? e->message : "", "Time",
                                                       time_json(e->time_ns))) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static const char *last_message(const struct task *t, enum task_event_type type)
{
        for (size_t i = t->n_events; i-- > 0;)
                if (t->events[i].type == type)
                        return t->events[i].message;
        return "";
}

/* Docker's State.Status words. */
static const char *docker_status(const struct task *t)
{
        if (t->deleting || t->status == TASK_EVENT_DELETING)
                return "removing";
        switch (t->status) {
        case TASK_EVENT_RUNNING:
                return "running";
        case TASK_EVENT_RESTARTING:
                return "restarting";
        case TASK_EVENT_EXITED:
        case TASK_EVENT_FAILED:
        case TASK_EVENT_CANCELLED:
                return "exited";
        default:
                return "created";
        }
}

static json_t *state_json(const struct task *t)
{
        const struct runtime_state *st = t->have_state ? &t->state : NULL;
        bool running = t->status == TASK_EVENT_RUNNING;
        const char *error = "";

        if (t->status == TASK_EVENT_FAILED || t->status == TASK_EVENT_CANCELLED)
                error = last_message(t, t->status);
        return json_pack(
                "{s:s,s:b,s:b,s:b,s:b,s:b,s:i,s:i,s:s,s:o,s:o}", "Status", docker_status(t), "Running",
                running, "Paused", 0, "Restarting", t->status == TASK_EVENT_RESTARTING, "OOMKilled",
                st ? st->oom_killed : 0, "Dead", 0, "Pid", running && st ? (int)st->pid : 0, "ExitCode",
                st && st->exit_code >= 0 ? st->exit_code : 0, "Error", error, "StartedAt",
                time_json(st ? st->started_at_ns : 0), "FinishedAt", time_json(st ? st->finished_at_ns : 0));
}

/* Image env first, request env overriding keys it repeats (as the runtime does). */
static json_t *merged_env(const struct task *t)
{
        json_t *a = json_array();

        for (size_t i = 0; a && t->image.env && t->image.env[i]; i++) {
                const char *e = t->image.env[i];
                size_t kl = strcspn(e, "=");
                bool overridden = false;
                for (size_t j = 0; j < t->req.n_env && !overridden; j++)
                        overridden = strncmp(t->req.env[j], e, kl + 1) == 0;
                if (!overridden)
                        json_array_append_new(a, json_string(e));
        }
        for (size_t j = 0; a && j < t->req.n_env; j++)
                json_array_append_new(a, json_string(t->req.env[j]));
        return a;
}

/* Docker's Config.Volumes: the image's anonymous volume paths as {"/path":{}}, null when none
 * (the seed's task volumes are named volumes, which Docker lists under Mounts only). */
static json_t *volumes_json(const struct task *t)
{
        json_t *o;

        if (!t->image.volumes || !t->image.volumes[0])
                return json_null();
        o = json_object();
        for (size_t i = 0; o && t->image.volumes[i]; i++)
                if (json_object_set_new(o, t->image.volumes[i], json_object()) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

static json_t *inspect_json(const struct task *t)
{
        json_t *bindings = json_object(), *exposed = json_object(), *mounts = json_array(),
               *args = json_array();
        char *const *argv = NULL;
        char created[48], name[TASK_NAME_MAX + 2];

        if (!bindings || !exposed || !mounts || !args) {
                json_decref(bindings);
                json_decref(exposed);
                json_decref(mounts);
                json_decref(args);
                return NULL;
        }
        for (size_t i = 0; t->image.exposed_ports && t->image.exposed_ports[i]; i++)
                json_object_set_new(exposed, t->image.exposed_ports[i], json_object());
        for (size_t i = 0; i < t->req.n_ports; i++) {
                char key[16], host[8];
                snprintf(key, sizeof(key), "%u/tcp", t->req.ports[i].target);
                snprintf(host, sizeof(host), "%u", t->req.ports[i].published);
                json_t *list = json_object_get(bindings, key);
                if (!list) {
                        list = json_array();
                        json_object_set_new(bindings, key, list);
                }
                /* The DNAT rules match every local address (docs/runtime.md), as Docker's 0.0.0.0. */
                json_array_append_new(list, json_pack("{s:s,s:s}", "HostIp", "0.0.0.0", "HostPort", host));
                if (!json_object_get(exposed, key))
                        json_object_set_new(exposed, key, json_object());
        }
        for (size_t i = 0; i < t->req.n_mounts; i++)
                json_array_append_new(mounts,
                                      json_pack("{s:s,s:s,s:s,s:b}", "Type", "volume", "Source",
                                                t->req.mounts[i].source, "Target", t->req.mounts[i].target,
                                                "ReadOnly", !t->req.mounts[i].rw));

        /* Path and Args as Docker computes them: the entrypoint, else the command. */
        if (t->image.entrypoint && t->image.entrypoint[0])
                argv = t->image.entrypoint;
        else if (t->image.cmd && t->image.cmd[0])
                argv = t->image.cmd;
        for (size_t i = 1; argv && argv[i]; i++)
                json_array_append_new(args, json_string(argv[i]));
        if (argv == t->image.entrypoint)
                for (size_t i = 0; t->image.cmd && t->image.cmd[i]; i++)
                        json_array_append_new(args, json_string(t->image.cmd[i]));

        task_time_format(t->created_ns, created, sizeof(created));
        snprintf(name, sizeof(name), "/%s", t->name);
        return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:i,s:{s:o,s:{s:s,s:i},s:o},s:{s:s,s:o,s:o,s:o,s:s,s:"
                         "o,s:s,s:o}}",
                         "Id", t->id, "Name", name, "Created", created, "Path", argv ? argv[0] : "", "Args",
                         args, "State", state_json(t), "Image", t->image.id ? t->image.id : "",
                         "RestartCount", t->have_state ? (int)t->state.restart_count : 0, "HostConfig",
                         "PortBindings", bindings, "RestartPolicy", "Name", "always", "MaximumRetryCount", 0,
                         "Mounts", mounts, "Config", "Hostname", t->name, "ExposedPorts", exposed, "Env",
                         merged_env(t), "Cmd", t->image.cmd ? task_strv_to_json(t->image.cmd) : json_null(),
                         "Image", t->req.image, "Volumes", volumes_json(t), "WorkingDir",
                         t->image.working_dir ? t->image.working_dir : "", "Entrypoint",
                         t->image.entrypoint ? task_strv_to_json(t->image.entrypoint) : json_null());
}

/* The per-container limits conkerd applies (config keys container-pids-limit and
 * container-memory-limit), under Docker's names; 0 means none, as in Docker. Runtime: the OCI
 * runtime conkerd runs containers with now (runtime = auto picks it at start). */
static void host_config_add_limits(const struct task *t, json_t *host_config)
{
        if (!host_config)
                return;
        json_object_set_new(host_config, "PidsLimit",
                            json_integer((json_int_t)t->m->cfg.container_pids_limit));
        json_object_set_new(host_config, "Memory",
                            json_integer((json_int_t)t->m->cfg.container_memory_limit));
        if (t->m->cfg.container_runtime)
                json_object_set_new(host_config, "Runtime", json_string(t->m->cfg.container_runtime));
}

json_t *task_to_json(const struct task *t)
{
        char created[48];
        bool is_cancel;
        json_t *doc;

        task_time_format(t->created_ns, created, sizeof(created));
        /* IsCancel: a cancel was asked for (it may still be on its way to the pipeline). */
        is_cancel = t->status == TASK_EVENT_CANCELLED || atomic_load(&t->cancel) == TASK_CANCEL_USER;
        doc = json_pack("{s:s,s:o,s:s,s:b,s:o,s:o,s:s,s:s,s:s,s:s}", "Id", t->id, "ContainerConf",
                        task_request_to_json(&t->req, TASK_REDACT_MASK), "Status",
                        task_event_type_to_string(t->status), "IsCancel", is_cancel, "Events",
                        task_events_to_json(t), "ContainerInspect", inspect_json(t), "Name", t->name,
                        "Created", created, "ImageName", t->image_ref, "ImageId",
                        t->image.id ? t->image.id : "");
        if (doc)
                host_config_add_limits(
                        t, json_object_get(json_object_get(doc, "ContainerInspect"), "HostConfig"));
        if (doc && t->status == TASK_EVENT_PULLING && t->progress.phase)
                json_object_set_new(doc, "Progress",
                                    json_pack("{s:s,s:I,s:I,s:i,s:i}", "Phase", t->progress.phase,
                                              "DoneBytes", (json_int_t)t->progress.done_bytes, "TotalBytes",
                                              (json_int_t)t->progress.total_bytes, "LayersDone",
                                              (int)t->progress.layers_done, "LayersTotal",
                                              (int)t->progress.layers_total));
        return doc;
}
