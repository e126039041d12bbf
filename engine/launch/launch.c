/* cpar-engine's launcher: finds the libpython of the python whose environment the engine
 * adopts (--python), loads it, then loads the engine proper (libcpar-engine.so, beside
 * this binary) and runs it.
 *
 * Why the engine is not linked against libpython: it embeds the interpreter of whichever
 * environment the client or cluster runs in, and where that interpreter's libpython lives
 * varies per install (a pyenv or conda prefix, Debian's /usr/lib/<multiarch>, a copy of a
 * Python tree moved elsewhere). A binary wheel cannot name it when it is built: an absolute
 * rpath is the build machine's, and auditwheel removes a libpython dependency from every
 * ELF file of a manylinux wheel anyway. So libcpar-engine.so leaves the Python C API
 * undefined, as an extension module does, and this launcher, which needs only libc,
 * resolves it at run time: it loads that python's libpython with RTLD_GLOBAL (the extension
 * modules imported later bind to the same copy), then the engine. libzmq and libcrypto are
 * the engine library's own dependencies, found through its rpath (in the wheel,
 * $ORIGIN/../../cpar.libs, set by auditwheel).
 *
 * Where libpython is looked for; the first that loads and is Python CPAR_PY_VERSION wins:
 *   1. $CPAR_LIBPYTHON when set (an explicit choice: nothing else is tried);
 *   2. beside the python, in PREFIX/lib, PREFIX/lib/<multiarch> and PREFIX/lib64 for each
 *      PREFIX of: its venv's base (pyvenv.cfg "home"), the directory above its real path,
 *      the directory above it as named;
 *   3. where that python has it: its own /proc/self/maps, else its sysconfig LIBDIR (one
 *      run of `python -I -S -c ...`, only when 2 found nothing: a python whose rpath
 *      points elsewhere);
 *   4. the dynamic linker's search by soname (LD_LIBRARY_PATH, ld.so.cache).
 * A python without a shared libpython (built without --enable-shared) fails with an error
 * that lists every path tried. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"

#ifndef CPAR_PY_VERSION
#error "CPAR_PY_VERSION (e.g. \"3.11\") must be defined by the build"
#endif
#ifndef CPAR_LIBPYTHON_SONAME
#error "CPAR_LIBPYTHON_SONAME (e.g. \"libpython3.11.so.1.0\") must be defined by the build"
#endif
#ifndef CPAR_MULTIARCH
#define CPAR_MULTIARCH ""
#endif
#ifndef CPAR_BUILD_PYTHON
#define CPAR_BUILD_PYTHON "python3"
#endif

#define CPAR__ENGINE_LIB "libcpar-engine.so"
#define CPAR__MAX_TRIED 32
#define CPAR__ASK_MAX 8192      /* bytes read from the python asked in step 3 */
#define CPAR__ASK_WAIT_MS 10000 /* how long it may take to answer */

typedef int (*cpar__run_fn)(const char *argv0, const cpar_engine_args *a);

/* The search for libpython: what was tried (for the error) and what was found. */
static struct {
    char tried[CPAR__MAX_TRIED][PATH_MAX];
    int ntried;
    char why[PATH_MAX + 256]; /* the first failure other than a missing file */
    void *handle;             /* the loaded libpython */
} cpar__lib;

static char cpar__self_dir[PATH_MAX]; /* the real directory of this binary */

/* Copies src into dst (size n); -1 when it does not fit. */
static int
cpar__copy(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n)
        return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

/* Cuts the last component off path (trailing slashes first): "a/b/c" -> "a/b", "c" -> ".",
 * "/c" -> "/". */
static void
cpar__parent(char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        strcpy(path, ".");
    else if (slash == path)
        path[1] = '\0';
    else
        *slash = '\0';
}

/* Records why path failed, unless an earlier failure is recorded already. */
static void
cpar__why(const char *fmt, const char *path, const char *detail)
{
    if (cpar__lib.why[0] == '\0')
        snprintf(cpar__lib.why, sizeof(cpar__lib.why), fmt, path, detail);
}

/* Loads path as libpython if it exists (or, with by_soname, lets the dynamic linker find
 * it) and is Python CPAR_PY_VERSION. 1 when it is now loaded, else 0. */
static int
cpar__try(const char *path, int by_soname)
{
    const char *(*version)(void);
    void *h;

    for (int i = 0; i < cpar__lib.ntried; i++)
        if (strcmp(cpar__lib.tried[i], path) == 0)
            return 0;
    if (cpar__lib.ntried < CPAR__MAX_TRIED)
        snprintf(cpar__lib.tried[cpar__lib.ntried++], PATH_MAX, "%s%s", path,
                 by_soname ? " (the dynamic linker's search)" : "");
    if (!by_soname && access(path, F_OK) != 0)
        return 0;
    h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (h == NULL) {
        const char *err = dlerror();
        if (!by_soname)
            cpar__why("%s does not load: %s", path, err ? err : "?");
        return 0;
    }
    /* Py_GetVersion may be called before the interpreter starts. */
    version = (const char *(*)(void))dlsym(h, "Py_GetVersion");
    if (version == NULL) {
        cpar__why("%s is no libpython (%s)", path, "it has no Py_GetVersion");
        dlclose(h);
        return 0;
    }
    if (strncmp(version(), CPAR_PY_VERSION ".", strlen(CPAR_PY_VERSION ".")) != 0) {
        cpar__why("%s is Python %s, not " CPAR_PY_VERSION, path, version());
        dlclose(h);
        return 0;
    }
    cpar__lib.handle = h;
    return 1;
}

/* Step 2 for one prefix. */
static int
cpar__try_prefix(const char *prefix)
{
    static const char *const subdirs[] = {"lib", "lib/" CPAR_MULTIARCH, "lib64"};
    char path[PATH_MAX];

    if (strcmp(prefix, "/") == 0)
        prefix = "";
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        if (i == 1 && CPAR_MULTIARCH[0] == '\0')
            continue;
        if (snprintf(path, sizeof(path), "%s/%s/%s", prefix, subdirs[i], CPAR_LIBPYTHON_SONAME) <
                (int)sizeof(path) &&
            cpar__try(path, 0))
            return 1;
    }
    return 0;
}

/* The "home" of a pyvenv.cfg in dir into home; 0, or -1 when there is none. */
static int
cpar__venv_home(const char *dir, char *home, size_t n)
{
    char path[PATH_MAX], line[PATH_MAX + 64];
    FILE *f;
    int rc = -1;

    if (snprintf(path, sizeof(path), "%s/pyvenv.cfg", dir) >= (int)sizeof(path))
        return -1;
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (rc < 0 && fgets(line, sizeof(line), f) != NULL) {
        char *k = line, *eq = strchr(line, '='), *v, *end;
        if (eq == NULL)
            continue;
        while (*k == ' ' || *k == '\t')
            k++;
        end = eq;
        while (end > k && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end - k != 4 || strncmp(k, "home", 4) != 0)
            continue;
        v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        end = v + strlen(v);
        while (end > v && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
            *--end = '\0';
        if (*v != '\0' && cpar__copy(home, n, v) == 0)
            rc = 0;
    }
    fclose(f);
    return rc;
}

/* The path of python: itself when it names a directory, else its first hit on $PATH. 0, or
 * -1 when it is not found. */
static int
cpar__locate(const char *python, char *out, size_t n)
{
    const char *path = getenv("PATH");

    if (strchr(python, '/') != NULL)
        return cpar__copy(out, n, python);
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (snprintf(out, n, "%.*s/%s", (int)len, len ? path : ".", python) < (int)n &&
            access(out, X_OK) == 0)
            return 0;
        path = colon ? colon + 1 : NULL;
    }
    return -1;
}

/* Step 2: the prefixes of the python at path. */
static int
cpar__try_beside(const char *path)
{
    char dir[PATH_MAX], buf[PATH_MAX], real[PATH_MAX];

    if (cpar__copy(dir, sizeof(dir), path) < 0)
        return 0;
    cpar__parent(dir); /* .../bin */
    /* A venv: pyvenv.cfg beside the python or one level up; home is the base's bin. */
    if (cpar__venv_home(dir, buf, sizeof(buf)) == 0 ||
        (snprintf(real, sizeof(real), "%s/..", dir) < (int)sizeof(real) &&
         cpar__venv_home(real, buf, sizeof(buf)) == 0)) {
        cpar__parent(buf);
        if (cpar__try_prefix(buf))
            return 1;
    }
    if (realpath(path, real) != NULL) {
        cpar__parent(real);
        cpar__parent(real);
        if (cpar__try_prefix(real))
            return 1;
    }
    cpar__parent(dir);
    return cpar__try_prefix(dir);
}

/* Step 3: asks python where its libpython is (see the comment at the top). */
static int
cpar__try_asking(const char *python)
{
    static const char code[] = "import sysconfig as s\n"
                               "for l in open('/proc/self/maps'):\n"
                               "    f = l.split(None, 5)\n"
                               "    if len(f) == 6 and '/libpython' in f[5]:\n"
                               "        print(f[5].strip())\n"
                               "        break\n"
                               "d, n = s.get_config_var('LIBDIR'), s.get_config_var('INSTSONAME')\n"
                               "if d and n:\n"
                               "    print(d + '/' + n)\n";
    char out[CPAR__ASK_MAX];
    size_t len = 0;
    int fds[2], status;
    pid_t pid;

    if (pipe(fds) < 0)
        return 0;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(fds[1], 1);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 2);
        }
        execlp(python, python, "-I", "-S", "-c", code, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ready = poll(&pfd, 1, CPAR__ASK_WAIT_MS);
        ssize_t r;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) { /* a python that hangs is not waited for */
            kill(pid, SIGKILL);
            break;
        }
        r = read(fds[0], out + len, sizeof(out) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof(out) - 1)
            break;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out[len] = '\0';
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (line[0] == '/' && cpar__try(line, 0))
            return 1;
    return 0;
}

/* Loads the libpython of python into cpar__lib.handle (steps 1-4). 0, or -1 after writing
 * to stderr what was tried. */
static int
cpar__load_libpython(const char *python)
{
    const char *env = getenv("CPAR_LIBPYTHON");
    char path[PATH_MAX];
    int found;

    if (env != NULL && *env != '\0') {
        found = cpar__try(env, 0);
        if (!found && cpar__lib.why[0] == '\0')
            cpar__why("%s%s", env, ": no such file");
    } else {
        int located = cpar__locate(python, path, sizeof(path)) == 0;
        if (strchr(python, '/') != NULL && access(python, X_OK) != 0) {
            fprintf(stderr,
                    "cpar-engine: --python %s: %s (the engine adopts that python's "
                    "environment)\n",
                    python, strerror(errno));
            return -1;
        }
        found = (located && cpar__try_beside(path)) || cpar__try_asking(python) ||
                cpar__try(CPAR_LIBPYTHON_SONAME, 1);
    }
    if (found)
        return 0;
    fprintf(stderr,
            "cpar-engine: no usable %s for --python %s (the engine embeds the libpython of "
            "the python whose environment it adopts, which must be CPython " CPAR_PY_VERSION
            " built with --enable-shared)%s%s; tried:",
            CPAR_LIBPYTHON_SONAME, python, cpar__lib.why[0] ? "; " : "", cpar__lib.why);
    for (int i = 0; i < cpar__lib.ntried; i++)
        fprintf(stderr, " %s", cpar__lib.tried[i]);
    fprintf(stderr, ". $CPAR_LIBPYTHON names it explicitly.\n");
    return -1;
}

/* cpar__self_dir: the real directory of this binary. 0 or -1. */
static int
cpar__find_self(const char *argv0)
{
    if (realpath("/proc/self/exe", cpar__self_dir) == NULL &&
        realpath(argv0, cpar__self_dir) == NULL) {
        fprintf(stderr, "cpar-engine: cannot find its own directory: %s\n", strerror(errno));
        return -1;
    }
    cpar__parent(cpar__self_dir);
    return 0;
}

/* The python used without --python or $CPAR_PYTHON: the one of the environment this
 * binary is installed in (PREFIX/lib/pythonX.Y/site-packages/cpar/bin -> PREFIX/bin), else
 * the one it was built with (an editable install), else python3 on $PATH. */
static const char *
cpar__default_python(void)
{
    static char path[PATH_MAX];
    char prefix[PATH_MAX];

    /* Only in that layout: an editable install's bin/ is in a source tree. */
    static const char *const layout[] = {"bin", "cpar", "site-packages", "python" CPAR_PY_VERSION,
                                         "lib"};
    int ok = 1;

    memcpy(prefix, cpar__self_dir, sizeof(prefix));
    for (size_t i = 0; i < sizeof(layout) / sizeof(layout[0]); i++) {
        const char *slash = strrchr(prefix, '/');
        const char *name = slash ? slash + 1 : prefix;
        if (strcmp(name, layout[i]) != 0 && !(i == 2 && strcmp(name, "dist-packages") == 0))
            ok = 0;
        cpar__parent(prefix);
    }
    if (ok &&
        snprintf(path, sizeof(path), "%s/bin/python" CPAR_PY_VERSION, prefix) < (int)sizeof(path) &&
        access(path, X_OK) == 0)
        return path;
    if (access(CPAR_BUILD_PYTHON, X_OK) == 0)
        return CPAR_BUILD_PYTHON;
    return "python3";
}

int
main(int argc, char **argv)
{
    cpar_engine_args args;
    char engine[PATH_MAX], libpath[PATH_MAX];
    struct link_map *map = NULL;
    cpar__run_fn run;
    void *h;
    int pr;

    if (cpar__find_self(argv[0]) < 0)
        return 1;
    pr = cpar_engine_parse_args(argc, argv, &args);
    if (pr != 0) {
        cpar_engine_usage(pr > 0 ? stdout : stderr, cpar__default_python());
        return pr > 0 ? 0 : 2;
    }
    if (args.python == NULL)
        args.python = cpar__default_python();
    if (cpar__load_libpython(args.python) < 0)
        return 1;
    if (dlinfo(cpar__lib.handle, RTLD_DI_LINKMAP, &map) == 0 && map != NULL &&
        map->l_name != NULL && cpar__copy(libpath, sizeof(libpath), map->l_name) == 0)
        args.libpython = libpath;
    if (snprintf(engine, sizeof(engine), "%s/%s", cpar__self_dir, CPAR__ENGINE_LIB) >=
        (int)sizeof(engine)) {
        fprintf(stderr, "cpar-engine: path too long: %s\n", cpar__self_dir);
        return 1;
    }
    h = dlopen(engine, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "cpar-engine: cannot load %s: %s\n", engine, dlerror());
        return 1;
    }
    run = (cpar__run_fn)dlsym(h, "cpar_engine_run");
    if (run == NULL) {
        fprintf(stderr, "cpar-engine: %s has no cpar_engine_run\n", engine);
        return 1;
    }
    return run(argv[0], &args);
}
