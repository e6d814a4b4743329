/* main.c: the citadel binary. Subcommands are rows of a table; each handler
 * parses its own arguments and returns the process exit code. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef CITADEL_VERSION
#define CITADEL_VERSION "0.1.0"
#endif

static const struct cli_command commands[] = {
    {"run", "generate text from a prompt with a GGUF model", cmd_run},
    {"serve", "serve models over an OpenAI-compatible HTTP API with continuous batching", cmd_serve},
    {"inspect", "show a GGUF file's metadata, tensors and memory needs", cmd_inspect},
    {"template", "show the exact prompt a chat template renders", cmd_template},
    {"plan", "will a model fit, how fast, and what it costs against the cloud", cmd_plan},
    {"bench", "measure prompt and generation speed against this machine's limits", cmd_bench},
    {"quantize", "convert an F32/F16/BF16 model to Q8_0, Q4_0 or a K-quant mixture", cmd_quantize},
    {"eval", "perplexity and KL divergence of a model against its f32 source", cmd_eval},
    {"synth", "write a random-weight GGUF of a real model's shape, for benchmarks", cmd_synth},
};

static void usage(FILE *f)
{
    fprintf(f, "citadel %s: run open-weight language models on your own hardware\n\n"
               "usage: citadel <command> [options]   (citadel <command> --help for details)\n\ncommands:\n",
            CITADEL_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("citadel %s\n", CITADEL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "citadel: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
