"""Sphinx extension of cpar's site: the figures it shows, generated at build time from the
files that hold them, never typed into a page.

- ``.. conformance-counts::`` / ``.. conformance-exclusions::``: ipyparallel's suite run
  against cpar, from tests/conformance/results/counts.json (the last ``make conformance``)
  and tests/conformance/expected.txt (every test that is not expected to pass, with its
  reason). The two are cross-checked: a disagreement is a build warning (an error
  under ``-W``).
- ``.. bench-results::``: the performance table of the newest complete ``make bench``
  result, rendered by bench/readme.py (the code that writes README's section);
  ``.. bench-taskdb::``: a sentence from the newest ``python -m bench.taskdb`` result.
  The chart (bench/report.py's, from the same result) is drawn into
  docs/_generated/bench-chart.png when the build starts.
- The executed example notebooks (tools/docs_notebooks.py, run by ``make docs`` against a
  real cluster into build/docs-notebooks) are copied into docs/_generated/examples/.
"""

import glob
import json
import os
import re
import shutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.dirname(HERE)
ROOT = os.path.dirname(DOCS)
GENERATED = os.path.join(DOCS, "_generated")
CONFORMANCE = os.path.join(ROOT, "tests", "conformance")
KINDS = ("private", "taskdb", "upstream", "todo")
KIND_TEXT = {
    "private": "tests of ipyparallel's private internals (not part of its API)",
    "taskdb": "tests of ipyparallel's MongoDB task-database backend",
    "upstream": "tests the suite itself skips or marks as expected failures",
    "todo": "user-facing behaviour cpar does not match yet",
}

logger = logging.getLogger(__name__)


def _rel(path):
    return os.path.relpath(path, ROOT)


# ---------------------------------------------------------------------------------------
# ipyparallel's suite (tests/conformance)


def read_expected(path=None):
    """The entries of expected.txt: [(module, test id, kind, reason)]."""
    path = path or os.path.join(CONFORMANCE, "expected.txt")
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"(\S+\.py)::(\S+) (\w+): (.*)$", line)
            if m is None or m.group(3) not in KINDS:
                raise ValueError(f"{_rel(path)}:{n}: not '<id> <kind>: <reason>': {line!r}")
            module = m.group(1)[:-3]
            entries.append((module, f"{m.group(1)}::{m.group(2)}", m.group(3), m.group(4)))
    return entries


def read_counts(path=None):
    path = path or os.path.join(CONFORMANCE, "results", "counts.json")
    with open(path) as f:
        return json.load(f)


def conformance_totals(counts, entries):
    """Totals over all modules, and the disagreements between counts.json and
    expected.txt (per module and kind)."""
    totals = {k: 0 for k in ("passed", "total") + KINDS}
    problems = []
    for module, c in counts["modules"].items():
        for k in totals:
            totals[k] += c.get(k, 0)
        for kind in KINDS:
            listed = sum(1 for m, _, k, _ in entries if m == module and k == kind)
            if listed != c.get(kind, 0):
                problems.append(f"{module}: {kind}: counts.json says {c.get(kind, 0)}, "
                                f"expected.txt lists {listed}")
        if c["passed"] + sum(c.get(k, 0) for k in KINDS) != c["total"]:
            problems.append(f"{module}: passed and excluded do not add up to its total")
    for module in {m for m, _, _, _ in entries} - set(counts["modules"]):
        problems.append(f"expected.txt lists tests of {module}, which counts.json lacks")
    return totals, problems


def _table(headers, rows, widths=None):
    """A docutils table node (first column text, the others right-aligned numbers)."""
    table = nodes.table()
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths or [1] * len(headers):
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body

    def row(cells, parent):
        tr = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=str(cell))
            tr += entry
        parent += tr

    row(headers, head)
    for r in rows:
        row(r, body)
    return table


class ConformanceCounts(SphinxDirective):
    """Per-module counts of the last run, and one sentence with the totals."""

    def run(self):
        counts_path = os.path.join(CONFORMANCE, "results", "counts.json")
        expected_path = os.path.join(CONFORMANCE, "expected.txt")
        for p in (counts_path, expected_path):
            self.env.note_dependency(p)
        counts, entries = read_counts(counts_path), read_expected(expected_path)
        totals, problems = conformance_totals(counts, entries)
        for p in problems:
            logger.warning(f"conformance: {p}", location=self.get_location())
        user = totals["passed"] + totals["todo"]
        text = (
            f"ipyparallel {counts.get('ipyparallel', '?')}'s suite has {totals['total']} tests "
            f"in the {len(counts['modules'])} modules run here. Against cpar, "
            f"{totals['passed']} of its {user} user-facing tests pass "
            f"({totals['todo']} user-facing tests fail). The other "
            f"{totals['total'] - user} are {totals['private']} tests of ipyparallel's private "
            f"internals, {totals['taskdb']} of its MongoDB task-database backend and "
            f"{totals['upstream']} that the suite itself skips or expects to fail here. "
            f"Figures of the last full run ({_rel(counts_path)}, written by "
            f"``make conformance``); the excluded tests are those of {_rel(expected_path)}.")
        para = self._parse(text)
        headers = ["module", "passed"] + list(KINDS) + ["total"]
        rows = [[m] + [c.get(k, 0) for k in headers[1:]] for m, c in counts["modules"].items()]
        rows.append(["all"] + [totals[k] for k in headers[1:]])
        return para + [_table(headers, rows, [4, 1, 1, 1, 1, 1, 1])]

    def _parse(self, text):
        node = nodes.container()
        self.state.nested_parse(StringList([text], source="conformance"), 0, node)
        return list(node.children)


class ConformanceExclusions(SphinxDirective):
    """Every test of expected.txt, grouped by kind, with its reason."""

    def run(self):
        path = os.path.join(CONFORMANCE, "expected.txt")
        self.env.note_dependency(path)
        entries = read_expected(path)
        out = []
        for kind in KINDS:
            mine = [e for e in entries if e[2] == kind]
            section = nodes.container()
            section += nodes.paragraph(
                "", "", nodes.strong(text=f"{kind} ({len(mine)})"),
                nodes.Text(f": {KIND_TEXT[kind]}."))
            if mine:
                items = nodes.bullet_list()
                for _, test, _, reason in mine:
                    item = nodes.list_item()
                    item += nodes.paragraph("", "", nodes.literal(text=test),
                                            nodes.Text(f": {reason}"))
                    items += item
                section += items
            out.append(section)
        return out


# ---------------------------------------------------------------------------------------
# bench/results


def _bench():
    from bench import readme  # the repository root is on sys.path (conf.py)

    return readme


def latest_taskdb():
    paths = sorted(glob.glob(os.path.join(ROOT, "bench", "results", "taskdb-*.json")))
    return paths[-1] if paths else None


class BenchResults(SphinxDirective):
    """The table and sentences of the newest complete make bench result, built by the
    functions that write README's section (bench/readme.py)."""

    def run(self):
        readme = _bench()
        path, scale_path = readme.latest_result(), readme.latest_scale()
        if path is None:
            logger.warning("no complete make bench result in bench/results",
                           location=self.get_location())
            return []
        self.env.note_dependency(path)
        doc = readme._load(path)
        scale = None
        if scale_path:
            self.env.note_dependency(scale_path)
            scale = readme._load(scale_path)
        # README's block, less its table: the table is built as nodes below (cells such as
        # "(1)" would read as list items if parsed as reStructuredText)
        lines = readme.render(doc, path, scale, scale_path)
        intro = [line for line in lines if line.startswith("Latest run:")]
        out = self._parse(intro, path)
        rows = readme.table_rows(doc["results"], doc["args"].get("many", 16))
        out.append(_table(readme.HEADERS, rows, [6, 2, 3, 2, 2, 2, 2, 2, 4]))
        out += self._parse(["Notes of the run:", ""] + [f"- {n}" for n in doc.get("notes", [])],
                           path)
        for text in readme.sentences(doc):
            out += self._parse([text], path)
        if scale is not None:
            out += self._parse([readme.scale_sentence(scale, scale_path)], scale_path)
        return out

    def _parse(self, lines, path):
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source=_rel(path)), 0, node)
        return list(node.children)


class BenchTaskdb(SphinxDirective):
    """One sentence from the newest python -m bench.taskdb result."""

    def run(self):
        path = latest_taskdb()
        if path is None:
            logger.warning("no bench.taskdb result in bench/results",
                           location=self.get_location())
            return []
        self.env.note_dependency(path)
        with open(path) as f:
            d = json.load(f)
        on, off = d["rates"]["sqlite"], d["rates"]["none"]
        g = d["growth"]["samples"]
        text = (
            f"The task database's cost (``python -m bench.taskdb``, {_rel(path)}, "
            f"{d['cpus']} cores, {d['args']['workers']} engines): load-balanced "
            f"``apply_async`` no-op tasks ran at {on['median']:,.0f}/s with the database on "
            f"and {off['median']:,.0f}/s with it off (medians of {on['n']} rounds of "
            f"{d['args']['tasks']:,} tasks; on/off {d['on_over_off']:.2f}). Over "
            f"{g[-1]['tasks']:,} tasks with ``--db-max-records`` {d['args']['max_records']:,}, "
            f"the controller's RSS at rest went from {g[0]['rss_mb']:.1f} MB (after "
            f"{g[0]['tasks']:,}) to {g[-1]['rss_mb']:.1f} MB, and the database file from "
            f"{g[0]['db_mb']:.1f} MB to {g[-1]['db_mb']:.1f} MB.")
        node = nodes.container()
        self.state.nested_parse(StringList([text], source=_rel(path)), 0, node)
        return list(node.children)


def draw_chart():
    """docs/_generated/bench-chart.png from the newest complete make bench result."""
    readme = _bench()
    path = readme.latest_result()
    if path is None:
        raise RuntimeError("no complete make bench result in bench/results: no chart")
    from bench import report

    doc = readme._load(path)
    stamp = doc["date"]
    title = (f"cpar against its peers and the floor: {_rel(path)} "
             f"({stamp[:10]}, {doc['cpus']} cores, medians)")
    report.chart(doc["results"], os.path.join(GENERATED, "bench-chart.png"), title,
                 doc["args"].get("many", 16))


# ---------------------------------------------------------------------------------------
# notebooks


def copy_notebooks(srcdir):
    """The executed notebooks into docs/_generated/examples/; their names."""
    if not srcdir or not os.path.isdir(srcdir):
        raise RuntimeError(
            f"no executed notebooks in {srcdir!r}: build the site with `make docs`, which "
            "runs tools/docs_notebooks.py first (or set cpar_notebooks_dir)")
    dest = os.path.join(GENERATED, "examples")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    names = []
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if not name.endswith(".ipynb"):
            continue
        src = os.path.join(srcdir, name)
        if not os.path.exists(src):
            raise RuntimeError(f"examples/{name} has no executed copy in {srcdir}")
        if os.path.getmtime(src) < os.path.getmtime(os.path.join(ROOT, "examples", name)):
            raise RuntimeError(f"the executed copy of examples/{name} in {srcdir} is older "
                               "than the notebook: run `make docs`")
        shutil.copy(src, dest)
        names.append(name)
    return names


def class_signature(app, what, name, obj, options, signature, return_annotation):
    """A class whose ``__new__`` takes ``(*args, **kwargs)`` (``Client`` defines one for
    mock.patch's sake) shows its ``__init__``'s parameters instead."""
    if what != "class" or signature != "(*args, **kwargs)" or "__init__" not in vars(obj):
        return None
    import inspect

    sig = inspect.signature(obj.__init__)
    params = list(sig.parameters.values())[1:]  # without self
    return str(sig.replace(parameters=params)), return_annotation


def _builder_inited(app):
    os.makedirs(GENERATED, exist_ok=True)
    draw_chart()
    copy_notebooks(app.config.cpar_notebooks_dir)


def setup(app):
    app.add_config_value("cpar_notebooks_dir",
                         os.environ.get("CPAR_DOCS_NOTEBOOKS",
                                        os.path.join(ROOT, "build", "docs-notebooks")), "env")
    app.add_directive("conformance-counts", ConformanceCounts)
    app.add_directive("conformance-exclusions", ConformanceExclusions)
    app.add_directive("bench-results", BenchResults)
    app.add_directive("bench-taskdb", BenchTaskdb)
    app.connect("builder-inited", _builder_inited)
    app.connect("autodoc-process-signature", class_signature)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
