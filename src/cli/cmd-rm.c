/* conker rm TASK: stops the container and removes everything of the task (image unless shared,
 * volumes crypto-erased, secrets, network rules, state). */
#include "client.h"
#include "commands.h"

int cmd_rm(int argc, char **argv)
{
        return cli_task_command(argc, argv, "rm", "DELETE", NULL, cli_print_id);
}
