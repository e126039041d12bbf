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
CFLAGS += ["-iquote", "cext/core", "-iquote", "cext/module"]
CFLAGS += os.environ.get("CPAR_EXTRA_CFLAGS", "").split()
LDFLAGS = os.environ.get("CPAR_EXTRA_LDFLAGS", "").split()
CORE = sorted(glob.glob("cext/core/*.c"))
MODULE = sorted(glob.glob("cext/module/*.c"))
ENGINE = sorted(glob.glob("engine/*.c"))
# The numeric kernels: their own extension (NumPy's C API), with the pure-C parts of core.
KERNELS = ["cext/kernels/kernels_module.c", "cext/core/escape.c", "cext/core/philox.c",
           "cext/core/errors.c"]


def _numpy_include():
    import numpy

    return numpy.get_include()


# Sources of cext/module that the engine shares (Python glue with no module state).
ENGINE_SHARED = ["cext/module/frame.c", "cext/module/zerocopy.c"]


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
        sources = CORE + ENGINE + [s for s in ENGINE_SHARED if os.path.exists(s)]
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
            sources=CORE + MODULE,
            libraries=["zmq", "crypto", "m"],
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
