/* conker events TASK: the task's events (time, action, message). */
#include <stdio.h>

#include "client.h"
#include "commands.h"

static void print_events(json_t *data, bool json)
{
        json_t *ev;
        size_t i;

        if (json) {
                cli_print_json(data);
                return;
        }
        json_array_foreach(data, i, ev)
                printf("%-30s  %-10s  %s\n", json_string_value(json_object_get(ev, "Time")),
                       json_string_value(json_object_get(ev, "Action")),
                       json_string_value(json_object_get(ev, "Message")));
}

int cmd_events(int argc, char **argv)
{
        return cli_task_command(argc, argv, "events", "GET", "/events", print_events);
}
