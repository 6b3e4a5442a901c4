/* conker inspect TASK: the full task document (config redacted, events, ContainerInspect) as
 * JSON, like docker inspect. */
#include "client.h"
#include "commands.h"

static void print_task(json_t *data, bool json)
{
        (void)json; /* always JSON, like docker inspect */
        cli_print_json(data);
}

int cmd_inspect(int argc, char **argv)
{
        return cli_task_command(argc, argv, "inspect", "GET", NULL, print_task);
}
