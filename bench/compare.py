"""Compares stored bench results, row by row: the median over runs of each side's figure
and their ratio. For before/after comparisons of a change (run the bench alternately on
the two builds, on the same machine, to share its noise):

    python -m bench.compare bench/results/A1.json A2.json ... -- bench/results/B1.json ...
"""

import json
import statistics
import sys


def _figures(paths):
    """{"system.row": [median of each run]} over the runs in paths."""
    out = {}
    for path in paths:
        with open(path) as f:
            results = json.load(f)["results"]
        for system, rows in results.items():
            if system == "floor":
                continue
            for row, value in rows.items():
                if isinstance(value, dict) and "median" in value:
                    out.setdefault(f"{system}.{row}", []).append(value["median"])
    return out


def compare(before_paths, after_paths):
    """Rows (name, before medians, after medians, after/before of their medians)."""
    before, after = _figures(before_paths), _figures(after_paths)
    rows = []
    for name, b in before.items():
        if name in after:
            mb, ma = statistics.median(b), statistics.median(after[name])
            rows.append((name, b, after[name], ma / mb if mb else float("nan")))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv or argv.index("--") == 0 or argv[-1] == "--":
        sys.exit(__doc__)
    cut = argv.index("--")
    rows = compare(argv[:cut], argv[cut + 1:])
    fmt = lambda xs: "/".join(f"{x:.3g}" for x in xs)  # noqa: E731
    print(f"{'row':36} {'before (each run)':>30} {'after (each run)':>30} {'after/before':>12}")
    for name, b, a, ratio in rows:
        print(f"{name:36} {fmt(b):>30} {fmt(a):>30} {ratio:12.3f}")
    print("after/before of the medians; for rates above 1 is faster, for times and memory "
          "below 1 is better")


if __name__ == "__main__":
    main()
