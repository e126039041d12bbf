"""Parts of AsyncResults: ``ar.split()`` (one AsyncResult per engine answer or map part)
and ``AsyncResult.join(*ars)`` (several seen as one), as in ipyparallel 8+.

A part shares the answer slots of the result it comes from (its *root*, the AsyncResult
the client's dispatch thread fills). The root tells the part when one of its slots is
done, so a part finishes as soon as its own answers are in: ``concurrent.futures.wait``
over the parts of a request returns when the first engine failed, without waiting for
the others.
"""

import concurrent.futures

from .asyncresult import AsyncResult

RETURN_WHEN = (concurrent.futures.ALL_COMPLETED, concurrent.futures.FIRST_COMPLETED,
               concurrent.futures.FIRST_EXCEPTION)


def check_return_when(return_when):
    if return_when not in RETURN_WHEN:
        raise ValueError(f"return_when must be ALL_COMPLETED, FIRST_COMPLETED or "
                         f"FIRST_EXCEPTION, not {return_when!r}")


def _root_of(ar, slot):
    """The AsyncResult that the dispatch thread fills ``slot`` of."""
    roots = ar._slot_root
    if roots is not None:
        return roots[id(slot)]
    owners = getattr(ar, "_owner_of", None)  # get_result's view over other results
    if owners is not None:
        return _root_of(owners[id(slot)], slot)
    return ar


def make_part(parts, single, fname=None):
    """A plain ``AsyncResult`` over ``parts``: ``[(ar, [slot, ...]), ...]`` (slots of
    those AsyncResults, in order). Done once every one of its slots is done."""
    first = parts[0][0]
    slots = []
    roots = {}
    for ar, ar_slots in parts:
        for slot in ar_slots:
            roots[id(slot)] = _root_of(ar, slot)
            slots.append(slot)
    sub = AsyncResult._over_slots(first._client, slots, [ar for ar, _ in parts],
                                  fname or first._fname, single)
    sub._return_exceptions = first._return_exceptions
    sub._slot_root = roots
    # Registered with each root under its lock, so no answer slips between the check of
    # a slot and the registration.
    by_root = {}
    for slot in slots:
        root = roots[id(slot)]
        by_root.setdefault(id(root), (root, []))[1].append(slot)
    for root, root_slots in by_root.values():
        with root._lock:
            for slot in root_slots:
                if slot.done:
                    sub._left -= 1
                else:
                    if root._watchers is None:
                        root._watchers = {}
                    root._watchers.setdefault(id(slot), []).append(sub)
    if sub._left == 0:
        sub._finish()
    return sub


def part_slot_done(sub):
    """One of the part's slots is done (called with its root's lock held)."""
    sub._left -= 1
    if sub._left == 0:
        sub._finish()


def split(ar):
    """One AsyncResult per slot of ``ar`` (``(ar,)`` when it has one): each single
    (its get() is that engine's value), or, for a map, a list of that part's value."""
    if len(ar._slots) <= 1:
        return (ar,)
    from .asyncresult import AsyncMapResult

    single = not isinstance(ar, AsyncMapResult)
    return tuple(make_part([(ar, [slot])], single) for slot in ar._slots)


def join(ars):
    """The AsyncResults ``ars`` as one (their slots in order); ``ars[0]`` if alone."""
    ars = list(ars)
    if not ars:
        raise ValueError("AsyncResult.join needs at least one AsyncResult")
    bad = [a for a in ars if not isinstance(a, AsyncResult)]
    if bad:
        raise TypeError(f"AsyncResult.join joins AsyncResults, not {bad[0]!r}")
    if len(ars) == 1:
        return ars[0]
    clients = {id(a._client) for a in ars}
    if len(clients) != 1:
        raise ValueError("AsyncResult.join: the results belong to different clients")
    return make_part([(a, list(a._slots)) for a in ars], single=False)


def wait_parts(ar, timeout, return_when):
    """``(done, pending)``: sets of ``ar.split()`` parts, once ``return_when`` is met or
    ``timeout`` seconds passed (None: no limit), as ``concurrent.futures.wait``."""
    check_return_when(return_when)
    parts = ar.split()
    if return_when == concurrent.futures.ALL_COMPLETED:
        done, pending = concurrent.futures.wait(parts, timeout)
        return done, pending
    # A part that failed still finishes its Future with a result (its error is raised by
    # get()), so FIRST_EXCEPTION is checked here, part by part as they finish.
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(parts)
    done = set()
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        newly, pending = concurrent.futures.wait(
            pending, left, return_when=concurrent.futures.FIRST_COMPLETED)
        done |= newly
        if not newly or return_when == concurrent.futures.FIRST_COMPLETED:
            break
        if any(not p.successful() for p in newly):
            break
    return done, pending
