/* cmd_serve.c: `citadel serve`: options in, srv_run (src/server/) out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "server/params.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel serve -m MODEL.gguf [--alias NAME] [-m MODEL2.gguf [--alias NAME2] ...] [options]\n\n"
            "Serves the models over an OpenAI-compatible HTTP API (docs/api.md): chat and text completions\n"
            "(streaming or not), embeddings, tokenize/detokenize, /v1/models, /health and /metrics.\n"
            "Requests pick a model by its id (`model` field): the alias, else the file name without .gguf.\n\n"
            "options:\n"
            "  -m, --model FILE          GGUF model to serve (repeat for several)\n"
            "  -a, --alias NAME          model id for the -m before it\n"
            "      --host ADDR           address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "      --port N              TCP port (default 8080; 0 = any free port, printed)\n"
            "      --slots N             sequences generated at once per model (default 4)\n"
            "  -c, --ctx N               positions per slot (default: training context, at most 4096)\n"
            "  -t, --threads N           threads per model (default: physical cores)\n"
            "      --batch N             most tokens per engine step, decode + prompt chunks (default 512)\n"
            "      --queue N             requests waiting for a slot before 429 (default 64)\n"
            "      --max-body BYTES      largest request body (default 8388608)\n"
            "      --idle-timeout SEC    close connections silent this long (default 60)\n"
            "      --drain-timeout SEC   on SIGTERM, how long in-flight requests may finish (default 30)\n"
            "      --max-connections N   open connections at most (default 256)\n"
            "      --max-connections-per-ip N  open connections from one client address (default 64; 0 = no cap)\n"
            "      --api-key KEY         require \"Authorization: Bearer KEY\" on every route but /health\n"
            "                            (default: $CITADEL_API_KEY when set, else no key)\n"
            "      --repack              copy Q4_0 / Q8_0 / Q4_K / Q6_K weights into the interleaved layout\n"
            "                            of the SIMD decode kernels at load: same outputs; faster generation\n"
            "                            on some CPUs, slower on others (measure with citadel bench\n"
            "                            --repack; docs/engine.md)\n"
            "      --list-params         print the request parameter table (Markdown) and exit\n"
            "  -h, --help                this help\n\n"
            "example:\n"
            "  citadel serve -m ../shared/models/stories260K.gguf --port 8080\n"
            "  curl -s localhost:8080/v1/completions -H 'Content-Type: application/json' \\\n"
            "       -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 32}'\n");
}

int cmd_serve(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_SLOTS, O_BATCH, O_QUEUE, O_BODY, O_IDLE, O_DRAIN, O_CONN, O_LIST, O_KEY, O_CONNIP, O_REPACK };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"alias", required_argument, NULL, 'a'},
        {"host", required_argument, NULL, O_HOST}, {"port", required_argument, NULL, O_PORT},
        {"slots", required_argument, NULL, O_SLOTS}, {"ctx", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'}, {"batch", required_argument, NULL, O_BATCH},
        {"queue", required_argument, NULL, O_QUEUE}, {"max-body", required_argument, NULL, O_BODY},
        {"idle-timeout", required_argument, NULL, O_IDLE}, {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"max-connections", required_argument, NULL, O_CONN}, {"list-params", no_argument, NULL, O_LIST},
        {"api-key", required_argument, NULL, O_KEY},
        {"max-connections-per-ip", required_argument, NULL, O_CONNIP},
        {"repack", no_argument, NULL, O_REPACK},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct srv_config cfg;
    srv_config_default(&cfg);
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:a:c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (cfg.n_models == SRV_MAX_MODELS) {
                fprintf(stderr, "citadel serve: at most %d models (-m)\n", SRV_MAX_MODELS);
                return 2;
            }
            cfg.models[cfg.n_models++] = (struct srv_model_spec){.path = optarg};
            break;
        case 'a':
            if (cfg.n_models == 0 || cfg.models[cfg.n_models - 1].alias) {
                fprintf(stderr, "citadel serve: --alias names the -m given just before it (one alias each)\n");
                return 2;
            }
            cfg.models[cfg.n_models - 1].alias = optarg;
            break;
        case O_HOST: cfg.host = optarg; break;
        case O_PORT: if (!arg_int("--port", optarg, 0, 65535, &v)) return 2; cfg.port = (uint16_t)v; break;
        case O_SLOTS: if (!arg_int("--slots", optarg, 1, 256, &v)) return 2; cfg.engine.n_slots = (uint32_t)v; break;
        case 'c': if (!arg_int("--ctx", optarg, 1, 1 << 24, &v)) return 2; cfg.engine.n_ctx = (uint32_t)v; break;
        case 't': if (!arg_int("--threads", optarg, 1, 1024, &v)) return 2; cfg.engine.n_threads = (uint32_t)v; break;
        case O_BATCH: if (!arg_int("--batch", optarg, 1, 65536, &v)) return 2; cfg.engine.n_batch = (uint32_t)v; break;
        case O_QUEUE: if (!arg_int("--queue", optarg, 1, 1 << 20, &v)) return 2; cfg.engine.queue_max = (uint32_t)v; break;
        case O_BODY: if (!arg_int("--max-body", optarg, 1024, 1LL << 32, &v)) return 2; cfg.max_body = (size_t)v; break;
        case O_IDLE: if (!arg_int("--idle-timeout", optarg, 1, 86400, &v)) return 2; cfg.idle_timeout_s = (unsigned)v; break;
        case O_DRAIN: if (!arg_int("--drain-timeout", optarg, 0, 86400, &v)) return 2; cfg.drain_timeout_s = (unsigned)v; break;
        case O_CONN: if (!arg_int("--max-connections", optarg, 1, 65536, &v)) return 2; cfg.max_connections = (unsigned)v; break;
        case O_KEY: cfg.api_key = optarg; break;
        case O_CONNIP: if (!arg_int("--max-connections-per-ip", optarg, 0, 65536, &v)) return 2; cfg.max_connections_per_ip = (unsigned)v; break;
        case O_REPACK: cfg.repack = true; break;
        case O_LIST: srv_params_doc(stdout); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel serve: unexpected argument '%s' (models go after -m)\n", argv[optind]);
        return 2;
    }
    if (cfg.n_models == 0) {
        fprintf(stderr, "citadel serve: no model given: use -m MODEL.gguf (see citadel serve --help)\n");
        return 2;
    }
    if (!cfg.api_key && getenv("CITADEL_API_KEY") && *getenv("CITADEL_API_KEY"))
        cfg.api_key = getenv("CITADEL_API_KEY");
    if (cfg.api_key && !*cfg.api_key) {
        fprintf(stderr, "citadel serve: --api-key is empty\n");
        return 2;
    }
    char err[1024] = "";
    int rc = srv_run(&cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "citadel serve: %s\n", err[0] ? err : "failed to start");
    return rc;
}
