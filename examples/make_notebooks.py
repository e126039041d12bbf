"""Writes the example notebooks (examples/0*.ipynb): the five seed tutorials in
../shared/seeds/, adapted to Python 3 and cpar, without outputs.

    python examples/make_notebooks.py

Each notebook starts its own local cluster in its first code cells
(``ipp.Cluster(n=..., cluster_id="nb-...")``) and stops it in its last cell. Cells whose
outputs tests/test_notebooks.py asserts on carry a tag (``metadata.tags``); keep the tags
when editing a cell. The adaptations (Python 3 syntax, ``import cpar as ipp``, smaller
sizes, left-out cells) are listed in each notebook's first markdown cell.
"""

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbcells.blog import BLOG
from nbcells.cookbook import COOKBOOK
from nbcells.julia import JULIA
from nbcells.tacc import TACC
from nbcells.tutorial import TUTORIAL

HERE = os.path.dirname(os.path.abspath(__file__))


NOTEBOOKS = {
    "00_julia_sets.ipynb": JULIA,
    "01_interactive_tutorial.ipynb": TUTORIAL,
    "02_distributing_code.ipynb": COOKBOOK,
    "03_parallel_computing_blog.ipynb": BLOG,
    "04_tacc_slides.ipynb": TACC,
}


def build(cells):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, text, tag) in enumerate(cells):
        cell = new_markdown_cell(text) if kind == "md" else new_code_cell(text)
        cell["id"] = f"cell-{i:02d}" if tag is None else tag
        if tag is not None:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main():
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, name)
        nbformat.write(build(cells), path)
        print("wrote", os.path.relpath(path))


if __name__ == "__main__":
    main()
