"""Build of cpar's C parts: the extensions cpar._core and cpar._kernels, and the engine
binary cpar-engine."""
import glob
import os
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2", "-fvisibility=hidden"]
# Project headers by -iquote only, so that none can shadow a system header.
CFLAGS += ["-iquote", "cext/core", "-iquote", "cext/controller", "-iquote", "cext/pyglue",
           "-iquote", "cext/module"]
CFLAGS += os.environ.get("CPAR_EXTRA_CFLAGS", "").split()
LDFLAGS = os.environ.get("CPAR_EXTRA_LDFLAGS", "").split()
# The folders are the layers (docs/architecture.md): core (transport, no Python),
# controller (on core), pyglue (frame and zero-copy glue: Python, no module state),
# module (the _core extension's types), kernels (alone: the _kernels extension).
CORE = sorted(glob.glob("cext/core/*.c"))
CONTROLLER = sorted(glob.glob("cext/controller/*.c"))
PYGLUE = sorted(glob.glob("cext/pyglue/*.c"))
MODULE = sorted(glob.glob("cext/module/*.c"))
ENGINE = sorted(glob.glob("engine/*.c"))
KERNELS = sorted(glob.glob("cext/kernels/*.c")) + ["cext/core/errors.c"]


def _numpy_include():
    import numpy

    return numpy.get_include()


def _libpython_soname():
    """The soname of this Python's shared libpython (libpythonX.Y.so.1.0), also when this
    interpreter is linked statically: the engine looks for it at run time."""
    name = sysconfig.get_config_var("INSTSONAME") or ""
    if ".so" not in name:
        name = "libpython%s.so.1.0" % sysconfig.get_config_var("LDVERSION")
    return name


class BuildWithEngine(build_ext):
    """Builds the extensions, then cpar-engine: bin/libcpar-engine.so (the engine on the
    same core, with the Python C API left undefined as in an extension) and bin/cpar-engine
    (a launcher needing only libc, engine/launch/launch.c). The launcher loads the
    libpython of the python whose environment the engine adopts, then the engine library,
    so that one build (a wheel) serves every install of this Python version, wherever its
    libpython lives; launch.c says where it looks and why nothing links libpython."""

    def run(self):
        super().run()
        self.build_engine()

    def build_engine(self):
        pkgdir = os.path.join("pypkg" if self.inplace else self.build_lib, "cpar", "bin")
        os.makedirs(pkgdir, exist_ok=True)
        temp = os.path.join(self.build_temp, "engine")
        version = "%d.%d" % sys.version_info[:2]
        # Engines started without --python (nor an install to adopt) use this environment.
        defines = ['-DCPAR_BUILD_PYTHON="%s"' % sys.executable]
        objects = self.compiler.compile(
            CORE + PYGLUE + ENGINE,
            output_dir=os.path.join(temp, "lib"),
            include_dirs=[sysconfig.get_paths()["include"]],
            extra_postargs=CFLAGS + ["-fPIC", "-DCPAR_ENGINE_SHARED"] + defines,
        )
        self.compiler.link_shared_object(
            objects,
            os.path.join(pkgdir, "libcpar-engine.so"),
            libraries=["zmq", "crypto", "pthread", "m", "dl"],
            extra_postargs=LDFLAGS,
        )
        launcher = self.compiler.compile(
            ["engine/launch/launch.c", "engine/args.c"],
            output_dir=os.path.join(temp, "launch"),
            extra_postargs=CFLAGS + ["-iquote", "engine"] + defines + [
                '-DCPAR_PY_VERSION="%s"' % version,
                '-DCPAR_LIBPYTHON_SONAME="%s"' % _libpython_soname(),
                '-DCPAR_MULTIARCH="%s"' % (sysconfig.get_config_var("MULTIARCH") or ""),
            ],
        )
        self.compiler.link_executable(
            launcher, "cpar-engine", output_dir=pkgdir, libraries=["dl"], extra_postargs=LDFLAGS
        )
        os.chmod(os.path.join(pkgdir, "cpar-engine"), 0o755)


setup(
    ext_modules=[
        Extension(
            "cpar._core",
            sources=CORE + CONTROLLER + PYGLUE + MODULE,
            libraries=["zmq", "crypto", "sqlite3", "m"],
            extra_compile_args=CFLAGS,
            extra_link_args=LDFLAGS,
        ),
        Extension(
            "cpar._kernels",
            sources=KERNELS,
            include_dirs=[_numpy_include()],
            libraries=["m"],
            extra_compile_args=CFLAGS,
            extra_link_args=LDFLAGS,
        ),
    ],
    cmdclass={"build_ext": BuildWithEngine},
)
