/* conker version */
#include <stdio.h>

#include "commands.h"

int cmd_version(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        printf("conker %s\n", CONKER_VERSION);
        return 0;
}
