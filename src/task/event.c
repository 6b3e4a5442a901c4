/* Task event types (the task's status is the type of its last event) and their timestamps. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "task.h"

static const char *const event_names[_TASK_EVENT_TYPE_MAX] = {
        [TASK_EVENT_PULLING] = "Pulling",     [TASK_EVENT_PULLED] = "Pulled",
        [TASK_EVENT_ATTESTING] = "Attesting", [TASK_EVENT_ATTESTED] = "Attested",
        [TASK_EVENT_CREATING] = "Creating",   [TASK_EVENT_CREATED] = "Created",
        [TASK_EVENT_STARTING] = "Starting",   [TASK_EVENT_RUNNING] = "Running",
        [TASK_EVENT_FAILED] = "Failed",       [TASK_EVENT_CANCELLED] = "Cancelled",
        [TASK_EVENT_EXITED] = "Exited",       [TASK_EVENT_RESTARTING] = "Restarting",
        [TASK_EVENT_DELETING] = "Deleting",
};

const char *task_event_type_to_string(enum task_event_type t)
{
        return t < _TASK_EVENT_TYPE_MAX ? event_names[t] : "Unknown";
}

int task_event_type_from_string(const char *s)
{
        for (int i = 0; i < _TASK_EVENT_TYPE_MAX; i++)
                if (s && strcmp(s, event_names[i]) == 0)
                        return i;
        return -EINVAL;
}

bool task_status_in_pipeline(enum task_event_type t)
{
        return t <= TASK_EVENT_STARTING;
}

bool task_status_live(enum task_event_type t)
{
        return t != TASK_EVENT_FAILED && t != TASK_EVENT_CANCELLED;
}

int64_t task_time_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void task_time_format(int64_t unix_ns, char *buf, size_t size)
{
        time_t sec = (time_t)(unix_ns / 1000000000);
        struct tm tm;

        if (unix_ns <= 0) {
                /* Docker's zero time, for "never". */
                snprintf(buf, size, "0001-01-01T00:00:00Z");
                return;
        }
        gmtime_r(&sec, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(unix_ns % 1000000000));
}
