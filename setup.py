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


class BuildWithEngine(build_ext):
    """Builds the extension, then links cpar-engine against the same core and libpython."""

    def run(self):
        super().run()
        self.build_engine()

    def build_engine(self):
        libdir = sysconfig.get_config_var("LIBDIR")
        ldlib = sysconfig.get_config_var("LDVERSION")
        pkgdir = os.path.join("pypkg" if self.inplace else self.build_lib, "cpar", "bin")
        os.makedirs(pkgdir, exist_ok=True)
        target = os.path.join(pkgdir, "cpar-engine")
        sources = CORE + PYGLUE + ENGINE
        objects = self.compiler.compile(
            sources,
            output_dir=os.path.join(self.build_temp, "engine"),
            include_dirs=[sysconfig.get_paths()["include"]],
            # Engines started without --python adopt the environment cpar was built in.
            extra_postargs=CFLAGS + ['-DCPAR_BUILD_PYTHON="%s"' % sys.executable],
        )
        self.compiler.link_executable(
            objects,
            "cpar-engine",
            output_dir=pkgdir,
            library_dirs=[libdir],
            libraries=["python" + ldlib, "zmq", "crypto", "pthread", "m", "dl"],
            runtime_library_dirs=[libdir],
            extra_postargs=LDFLAGS + ["-Wl,--export-dynamic"],
        )
        os.chmod(target, 0o755)


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
