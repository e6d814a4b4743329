/* cmd_quantize.c: placeholder until `citadel quantize` lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_quantize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "citadel quantize: not available yet\n");
    return 2;
}
