/* cpar-engine's command line: one parser and one usage text, shared by the engine
 * (main.c) and its launcher (launch/launch.c, which must know --python before it can
 * load libpython). Pure C: no Python. */
#ifndef CPAR_ENGINE_ARGS_H
#define CPAR_ENGINE_ARGS_H

#include <stdio.h>

/* What the command line and the environment ask for. */
typedef struct cpar_engine_args {
    const char *connection_file; /* --connection-file (required) */
    const char *python;          /* --python, else $CPAR_PYTHON when set, else NULL */
    const char *log;             /* --log, or NULL: stderr */
    const char *libpython;       /* the libpython the launcher loaded (for the log), or NULL */
    int id;                      /* --id, or -1 */
    int quiet;                   /* --quiet */
} cpar_engine_args;

/* Parses argv into a (zeroed first). Returns 0, 1 (--help) or -1 (a usage error, already
 * written to stderr). */
int cpar_engine_parse_args(int argc, char **argv, cpar_engine_args *a);

/* Writes the usage text to f; default_python is the python used without --python. */
void cpar_engine_usage(FILE *f, const char *default_python);

/* Runs the engine with the parsed arguments (a->python set); argv0 becomes sys.argv[0].
 * Returns the exit status. In the shared-library build (libcpar-engine.so) the launcher
 * calls it once libpython is loaded; in a linked build (the sanitizer engines) main()
 * does. */
int cpar_engine_run(const char *argv0, const cpar_engine_args *a);

#endif
