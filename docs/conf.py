"""Sphinx configuration of cpar's documentation site (``make docs`` builds it into
build/docs with warnings as errors; docs/docs.mk has the target)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, ROOT)  # bench/, for the performance page's figures

import cpar  # noqa: E402 - the installed package (make docs builds it first)

project = "cpar"
author = "the cpar developers"
copyright = "the cpar developers"
version = release = cpar.__version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and the example notebooks
    "sphinx.ext.autodoc",
    "sphinxarg.ext",  # the CLI reference, from cpar.cli's argparse parser
    "cpar_docs",  # generated figures: conformance counts, bench table and chart, notebooks
]

root_doc = "index"
# blocks without a language (the design notes' diagrams, docstrings' examples) stay plain
highlight_language = "none"
exclude_patterns = ["_build", "docs.mk", "requirements.txt"]
suppress_warnings = []

# MyST: the design notes in docs/*.md link to each other as files
myst_enable_extensions = ["deflist", "dollarmath"]
myst_heading_anchors = 3

# the notebooks are executed before the build (tools/docs_notebooks.py, a real cluster);
# the site shows those outputs and never runs code itself
nb_execution_mode = "off"
nb_merge_streams = True

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_typehints = "none"  # the signatures say enough; _core's stubs are not public
autoclass_content = "both"


html_theme = "alabaster"
html_title = f"cpar {release}"
html_static_path = []
html_theme_options = {
    "description": "Interactive parallel computing for Python, with a C core",
    "fixed_sidebar": False,
    "page_width": "1280px",
    "body_max_width": "none",
}
