/* conker cancel TASK: stops a task that is still being created (it ends Cancelled). */
#include "client.h"
#include "commands.h"

int cmd_cancel(int argc, char **argv)
{
        return cli_task_command(argc, argv, "cancel", "POST", "/cancel", cli_print_id);
}
