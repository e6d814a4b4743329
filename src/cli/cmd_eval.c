/* cmd_eval.c: placeholder until `citadel eval` lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "citadel eval: not available yet\n");
    return 2;
}
