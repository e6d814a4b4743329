/* cmd_bench.c: placeholder until `citadel bench` lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "citadel bench: not available yet\n");
    return 2;
}
