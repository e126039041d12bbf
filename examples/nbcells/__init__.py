"""The cells of the example notebooks, one module per seed tutorial (make_notebooks.py
writes them out). A cell is ``md(text)`` or ``code(text, tag)``; tests/test_notebooks.py
finds the cells it asserts on by their tags, so keep the tags when editing a cell."""


def md(text):
    return ("md", text.strip("\n"), None)


def code(text, tag=None):
    return ("code", text.strip("\n"), tag)


def start(n, cid, client_name="rc", how="connect", client_class="Client"):
    """The cell that starts the notebook's own cluster."""
    if how == "connect":
        body = f"{client_name} = cluster.start_and_connect_sync()"
    else:  # start, then connect a Client the way the seed does (``Client()``)
        body = ("cluster.start_cluster_sync()\n"
                f"{client_name} = {client_class}(cluster_id={cid!r})\n"
                f"{client_name}.wait_for_engines({n}, timeout=60)")
    return code(
        f"# This notebook starts its own cluster of {n} engines; its last cell stops it.\n"
        f"cluster = ipp.Cluster(n={n}, cluster_id={cid!r})\n{body}",
        tag="start",
    )


STOP = code("cluster.stop_cluster_sync()", tag="stop")
