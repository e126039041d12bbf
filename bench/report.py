"""The table of results, cpar's ratios to each peer and to the floor beside DESIGN §8's
targets, and the JSON and PNG written to bench/results/."""

import json
import os

PEERS = ["ipyparallel", "dask", "multiprocessing"]
SYSTEMS = ["cpar"] + PEERS
SIZES_MB = (1, 100, 1000)  # the push/pull rows' sizes (bench --sizes' default), in MB
REF = "ref"  # the reference column: the floor (raw libzmq, memcpy) or cpar's own baseline

# Reference values, by name: where each comes from (results of "floor" or "cpar").
REFS = {
    "relay": ("floor", "relay_roundtrip", "libzmq 3-hop relay round trip (bench/floor.c)"),
    "relay_rate": ("floor", "relay_msgs_per_s", "libzmq relay messages/s, 1000 in flight"),
    "memcpy": ("floor", "memcpy_gbps", "memcpy bandwidth (bench/floor.c)"),
    "zmq_big": ("floor", "relay_big_gbps", "one 100 MB message through the libzmq relay"),
    "first_touch": ("floor", "first_touch_gbps",
                    "a first write of 100 MB to fresh pages (bench/floor.c)"),
    **{f"socket_{_mb}": ("cpar", f"push_{_mb}MB_cold_socket",
                         f"cpar's socket path (engines with CPAR_SHM=0), the same first push "
                         f"of {_mb} MB") for _mb in SIZES_MB},
    "serial": ("cpar", "julia_numpy_serial", "the seed's serial numpy, in this process"),
    "kernels_1": ("cpar", "julia_kernels_1", "cpar.kernels on 1 engine"),
    "local_1": ("cpar", "julia_kernels_local",
                "cpar.kernels on the whole image in this process (no transport)"),
}


class Row:
    """One line: ``key`` of the results, unit and scale, which way is better, the
    reference it is compared with, and DESIGN §8's targets as minimum ratios (times
    better than the peer or the reference)."""

    def __init__(self, key, label, unit, better="low", scale=1, ref=None, goal=None,
                 peers=True, **targets):
        """``goal``: an absolute target for cpar's own median (in the row's unit after
        ``scale``): at least it for "high" rows, at most it for "low" ones. ``peers=False``:
        no ratio to the peers (their figures are not of the same work, e.g. a different
        number of tasks each; the notes say what each one ran)."""
        self.key, self.label, self.unit, self.better, self.scale = key, label, unit, better, scale
        self.ref, self.targets, self.goal, self.peers = ref, targets, goal, peers

    def goal_met(self, cpar):
        """True/False for a row with a goal and a value (scaled), else None."""
        if self.goal is None or cpar is None:
            return None
        return cpar >= self.goal if self.better == "high" else cpar <= self.goal


ROWS = [
    Row("start", "cluster start until ready (2 engines)", "s", ipyparallel=10),
    Row("stop", "cluster stop", "s"),
    Row("rss_engine_mb", "RSS of one engine, idle", "MB"),
    Row("rss_controller_mb", "RSS of the controller, idle", "MB"),
    # Each system runs as many tasks as it can within the budget (200,000 for cpar, a few
    # thousand for the slow ones): their figures are shown, not divided.
    Row("rss_controller_after_mb", "RSS of the controller after N tasks (*)", "MB", peers=False),
    Row("rss_controller_growth_mb", "controller RSS growth over N tasks after warm-up (*)", "MB",
        goal=10, peers=False),
    Row("rss_total_mb", "RSS of all processes, idle", "MB"),
    Row("roundtrip_one", "no-op apply round trip, 1 engine", "ms", scale=1e3, ref="relay",
        ipyparallel=30, multiprocessing=1, ref_=1 / 1.5),
    Row("roundtrip_all", "no-op apply round trip, all engines", "ms", scale=1e3),
    Row("tasks_per_s", "10,000 apply_async no-op, load-balanced", "/s", "high",
        ref="relay_rate", goal=60e3, ipyparallel=300, dask=100),
    Row("map_unchunked_per_s", "map of 100,000 no-op, chunksize 1 (*)", "/s", "high",
        goal=150e3),
    Row("controller_alone_per_s", "controller alone: tasks/s from a C client (*)", "/s", "high",
        ref="relay_rate", ref_=0.5),
    Row("map_chunked_per_s", "map of 100,000 no-op, 100 chunks", "/s", "high",
        multiprocessing=0.5),
]
for _mb in SIZES_MB:
    _t = dict(ipyparallel=10, ref_=0.5) if _mb >= 100 else {}
    _size = f"{_mb} MB" if _mb < 1000 else "1 GB"
    ROWS += [Row(f"push_{_mb}MB", f"push {_size} to 1 engine", "GB/s", "high", ref="memcpy", **_t),
             Row(f"pull_{_mb}MB", f"pull {_size} from 1 engine", "GB/s", "high", ref="memcpy",
                 **_t)]
for _mb in SIZES_MB:
    _size = f"{_mb} MB" if _mb < 1000 else "1 GB"
    # a cold transfer is never slower than ipyparallel's (issue 17)
    ROWS.append(Row(f"push_{_mb}MB_cold", f"push {_size}, first into the engine (cold)", "GB/s",
                    "high", ref="first_touch", ipyparallel=1))
    # ... and never slower than cpar's own socket path (issue 17)
    ROWS.append(Row(f"push_{_mb}MB_cold", f"  {_size} cold vs cpar's socket path", "GB/s", "high",
                    ref=f"socket_{_mb}", ref_=1))
ROWS += [
    Row("scatter_100MB", "scatter 100 MB over all engines", "GB/s", "high", ref="memcpy"),
    Row("gather_100MB", "gather 100 MB from all engines", "GB/s", "high", ref="memcpy"),
    Row("julia_numpy_1", "Julia 1024², numpy, 1 engine", "s", ref="serial"),
    Row("julia_numpy_2", "Julia 1024², numpy, 2 engines", "s", ref="serial"),
    Row("julia_kernels_1", "Julia 1024², cpar.kernels, 1 engine", "s", ref="serial"),
    Row("julia_kernels_2", "Julia 1024², cpar.kernels, 2 engines", "s", ref="serial", ref_=100),
    Row("julia_kernels_2", "  the same, vs cpar.kernels on 1 engine", "s", ref="kernels_1",
        ref_=1.8),
    # the machine's own speedup: the kernel's halves in two plain processes at once
    Row("julia_kernels_local_2proc", "  kernel alone, halves in 2 processes", "s",
        ref="local_1"),
    Row("start_many", "{many} engines: start until ready", "s", ipyparallel=10),
    Row("rss_total_mb_many", "{many} engines: RSS of all processes", "MB", ipyparallel=3),
    Row("roundtrip_all_many", "{many} engines: no-op apply on all", "ms", scale=1e3,
        ipyparallel=20),
]


def fmt(v, unit):
    """A value with its unit, 3 significant digits, k/M for large rates."""
    if v is None:
        return "n/a"
    if unit == "MB" and v >= 1000:
        v, unit = v / 1000, "GB"
    if unit == "/s":
        for div, suffix in ((1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:.3g}{suffix}/s"
    return f"{v:.3g} {unit}"


def _median(results, system, key):
    r = (results.get(system) or {}).get(key)
    return r["median"] if r else None


def _times_better(row, cpar, other):
    if not cpar or not other:
        return None
    return other / cpar if row.better == "low" else cpar / other


def cells(row, results):
    """{column: value} and {column: (ratio, target or None)} of one row."""
    vals = {s: _median(results, s, row.key) for s in SYSTEMS}
    if row.ref:
        source, key, _ = REFS[row.ref]
        vals[REF] = _median(results, source, key)
    else:
        vals[REF] = None
    ratios = {}
    for col in (PEERS if row.peers else []) + [REF]:
        r = _times_better(row, vals["cpar"], vals[col])
        target = row.targets.get("ref_" if col == REF else col)
        if r is not None or target is not None:
            ratios[col] = (r, target)
    return vals, ratios


def _ratio_text(ratio, target):
    if ratio is None:
        return f"n/a (≥{target:g})" if target else "n/a"
    text = f"{ratio:.3g}×"
    if target:
        text += f" ≥{target:g} " + ("✓" if ratio >= target else "✗")
    return text


def table(results, many=16):
    """The printed table (medians; ratios as times better than the peer or reference)."""
    head = (f"{'measurement (median of repeats)':<42}" + "".join(f"{s:>16}" for s in SYSTEMS)
            + f"{'floor/ref':>12}" + "".join(f"{'÷ ' + p:>18}" for p in PEERS)
            + f"{'÷ floor/ref':>16}")
    lines = [head, "-" * len(head)]
    for row in ROWS:
        vals, ratios = cells(row, results)
        if all(v is None for v in vals.values()):
            continue
        scaled = {k: (v * row.scale if v is not None else None) for k, v in vals.items()}
        label = row.label.format(many=many)
        line = f"{label:<42}" + "".join(f"{fmt(scaled[s], row.unit):>16}" for s in SYSTEMS)
        line += f"{fmt(scaled[REF], row.unit) if scaled[REF] is not None else '':>12}"
        for col, width in zip(PEERS + [REF], (18, 18, 18, 16)):
            line += f"{_ratio_text(*ratios[col]) if col in ratios else '':>{width}}"
        lines.append(line)
    return "\n".join(lines)


def legend():
    lines = ["ratios: times better than the peer or the reference (rates: cpar ÷ other; "
             "times and memory: other ÷ cpar); above 1 cpar wins; ≥N is DESIGN §8's "
             "target, ✓ met, ✗ not met.", "floor/ref column:"]
    used = {row.ref for row in ROWS if row.ref}
    lines += [f"  {REFS[name][2]}" for name in REFS if name in used]
    return "\n".join(lines)


def write_json(path, document):
    with open(path, "w") as f:
        json.dump(document, f, indent=1)


def chart(results, path, title, many=16):
    """A PNG of the ratios of the table (log scale), a tick at each target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = PEERS + [REF]
    colors = dict(zip(cols, ["#d62728", "#1f77b4", "#2ca02c", "#7f7f7f"]))
    lines = []
    for row in ROWS:
        _, ratios = cells(row, results)
        if any(r for r, _ in ratios.values()):
            lines.append((row.label.strip().format(many=many), ratios))
    height = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(lines) + 1.5))
    for i, (label, ratios) in enumerate(lines):
        for j, col in enumerate(cols):
            if col not in ratios:
                continue
            ratio, target = ratios[col]
            y = i + (j - (len(cols) - 1) / 2) * height
            if ratio:
                ax.barh(y, ratio, height=height, color=colors[col],
                        label=col if i == 0 or col not in ax.get_legend_handles_labels()[1]
                        else None)
            if target:
                met = ratio is not None and ratio >= target
                ax.plot([target, target], [y - height / 2, y + height / 2],
                        color="black" if met else "red", linewidth=2)
    ax.set_yticks(range(len(lines)))
    ax.set_yticklabels([label for label, _ in lines], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("cpar: times better than the peer / the floor or reference "
                  "(log; tick: DESIGN §8 target, red when not met)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, ["÷ floor/ref" if lab == REF else f"÷ {lab}" for lab in labels],
              loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
