/* cmd_synth.c: placeholder until `citadel synth` lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_synth(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "citadel synth: not available yet\n");
    return 2;
}
