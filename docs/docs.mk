# The documentation site (issue 18): `make docs` (Sphinx, warnings as errors). Included by the Makefile.
# docs/requirements.txt goes into the project's venv; the example notebooks are executed
# against real local clusters (tools/docs_notebooks.py) into
# build/docs-notebooks, again whenever a notebook or the package changes, and the site
# renders those outputs (docs/_ext/cpar_docs.py copies them into docs/_generated/); then
# Sphinx builds build/docs from scratch (-E), every warning an error (-W), all of them
# reported (--keep-going).
# Time on this 2-core machine (part of `make test`): about 40 s in all, the notebooks
# about 23 s of it and Sphinx about 12 s; with the notebooks up to date, Sphinx alone.
DOCS_STAMP := $(VENV)/.cpar-docs-installed
DOCS_NOTEBOOKS := build/docs-notebooks

$(DOCS_STAMP): $(STAMP) docs/requirements.txt
	$(VPY) -m pip install -q -r docs/requirements.txt
	touch $@

$(DOCS_NOTEBOOKS)/.executed: $(DOCS_STAMP) $(wildcard examples/*.ipynb) tools/docs_notebooks.py \
    $(wildcard pypkg/cpar/*.py pypkg/cpar/*/*.py)
	rm -rf $(DOCS_NOTEBOOKS)
	$(VPY) tools/docs_notebooks.py $(DOCS_NOTEBOOKS)
	touch $@

docs: $(DOCS_NOTEBOOKS)/.executed
	rm -rf build/docs docs/_generated
	CPAR_DOCS_NOTEBOOKS=$(abspath $(DOCS_NOTEBOOKS)) \
	  $(VPY) -m sphinx -W --keep-going -E -q -b html docs build/docs
	@echo "docs: build/docs/index.html"

.PHONY: docs
