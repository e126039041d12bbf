"""BroadcastView: a DirectView whose requests may come back coalesced.

Every request of a cpar DirectView already leaves the client as ONE message that the
controller fans out to the engines (docs/protocol.md, "Targeted messages"), so a
BroadcastView sends exactly what a DirectView sends. What it adds is ``is_coalescing``:
then each request carries the header flag COALESCE and the controller holds the
engines' replies until all have come (or their engines died) and sends them to the client
as one message, which the client's I/O thread splits back into the per-engine replies
(docs/protocol.md, "Coalesced replies"). Results, errors and metadata are those of a
DirectView either way.

Requests that go out as one message per engine (``scatter``, ``map``) have a single
target each and are not coalesced: there is nothing to combine.
"""

from .view import DirectView


class BroadcastView(DirectView):
    """A view on ``targets`` (an engine id, a list of ids or 'all') whose multi-engine
    requests reach the engines by one fan-out at the controller; with ``is_coalescing``
    the engines' replies also travel back as one message."""

    _flags = DirectView._flags + ("is_coalescing",)

    def __init__(self, client, targets="all", block=None, is_coalescing=False):
        super().__init__(client, targets, block=block)
        self.is_coalescing = bool(is_coalescing)

    @classmethod
    def make(cls, client, targets="all", is_coalescing=False, **kwargs):
        """``Client.broadcast_view``: checks ``targets`` now (as ``direct_view``) and
        sets the flags given as keywords."""
        bad = sorted(set(kwargs) - set(cls._flags))
        if bad:
            raise TypeError(f"broadcast_view() got unexpected keyword argument(s): "
                            f"{', '.join(map(repr, bad))} (flags: "
                            f"{', '.join(cls._flags)})")
        if isinstance(targets, str) and targets == "all":
            view = cls(client, "all", is_coalescing=is_coalescing)
        else:
            single, tlist = client._build_targets(targets)  # fails early on unknown ids
            view = cls(client, tlist[0] if single else tlist, is_coalescing=is_coalescing)
        for name, value in kwargs.items():
            setattr(view, name, value)
        return view

    def _submit(self, *args, **kwargs):
        kwargs.setdefault("coalesce", self.is_coalescing)
        return super()._submit(*args, **kwargs)

    def set_flags(self, **kwargs):
        """Sets ``block``, ``track``, ``targets``, ``label`` or ``is_coalescing``;
        returns the view."""
        if "is_coalescing" in kwargs:
            kwargs["is_coalescing"] = bool(kwargs["is_coalescing"])
        return super().set_flags(**kwargs)

    def __repr__(self):
        shown = super().__repr__()[len("<DirectView "):-1]
        return f"<BroadcastView {shown}{' coalescing' if self.is_coalescing else ''}>"
