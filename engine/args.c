/* cpar-engine's command line (args.h): parsed once by the launcher, before any Python. */
#include "args.h"

#include <stdlib.h>
#include <string.h>

void
cpar_engine_usage(FILE *f, const char *default_python)
{
    fprintf(f,
            "usage: cpar-engine --connection-file PATH [--python EXE] [--log PATH] [--id N] "
            "[--quiet]\n"
            "  --connection-file PATH  the controller's connection file (JSON)\n"
            "  --python EXE            python whose environment (venv, sys.path) to adopt\n"
            "                          (default: $CPAR_PYTHON, else %s)\n"
            "  --log PATH              append the engine log to PATH (default: stderr)\n"
            "  --id N                  ask the controller for engine id N\n"
            "  --quiet                 log errors only\n"
            "environment: CPAR_PYTHON (default --python), CPAR_LIBPYTHON (the libpython to\n"
            "  embed, when the one of --python is not found beside it), CPAR_REGISTER_TIMEOUT\n"
            "  (seconds to wait for the controller's REGISTER_REPLY, default 30),\n"
            "  CPAR_RECOVER_GRACE (seconds, may be fractional: how long to wait for a\n"
            "  controller that died to come back, e.g. by `cpar cluster recover`, while tasks\n"
            "  keep running; 0: exit soon after the connection drops; default: the\n"
            "  controller's grace period, from its REGISTER_REPLY), CPAR_ENGINE_PRELOAD\n"
            "  (modules imported once registered, before the first request, so that it does\n"
            "  not wait for them; separated by commas or spaces; default: numpy, when\n"
            "  installed; empty: none)\n",
            default_python);
}

int
cpar_engine_parse_args(int argc, char **argv, cpar_engine_args *a)
{
    const char *env;

    memset(a, 0, sizeof(*a));
    a->id = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char **dst = NULL;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return 1;
        if (strcmp(arg, "--quiet") == 0) {
            a->quiet = 1;
            continue;
        }
        if (namelen == 17 && strncmp(arg, "--connection-file", 17) == 0)
            dst = &a->connection_file;
        else if (namelen == 8 && strncmp(arg, "--python", 8) == 0)
            dst = &a->python;
        else if (namelen == 5 && strncmp(arg, "--log", 5) == 0)
            dst = &a->log;
        else if (!(namelen == 4 && strncmp(arg, "--id", 4) == 0)) {
            fprintf(stderr, "cpar-engine: unknown argument %s\n", arg);
            return -1;
        }
        if (eq != NULL)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "cpar-engine: %s needs a value\n", arg);
            return -1;
        }
        if (dst != NULL) {
            *dst = val;
        } else {
            char *end;
            long v = strtol(val, &end, 10);
            if (*val == '\0' || *end != '\0' || v < -1 || v > 0x7fffffff) {
                fprintf(stderr, "cpar-engine: bad --id %s\n", val);
                return -1;
            }
            a->id = (int)v;
        }
    }
    if (a->connection_file == NULL) {
        fprintf(stderr, "cpar-engine: --connection-file is required\n");
        return -1;
    }
    if (a->python != NULL && *a->python == '\0')
        a->python = NULL;
    if (a->python == NULL && (env = getenv("CPAR_PYTHON")) != NULL && *env != '\0')
        a->python = env;
    return 0;
}
