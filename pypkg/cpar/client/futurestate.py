"""A ``concurrent.futures.Future`` whose Condition is made only when a waiter needs it.

Future.__init__ makes a Condition (an RLock and five bound methods with it) that most
results never use: a result finished before anyone waits is read without it. It is made
on the first use of ``_condition`` (a wait, a done callback, concurrent.futures.wait),
under _CONDITION_MADE, so that a result either finishes through Future.set_result on the
Condition its waiters hold, or finishes before there is one and every later waiter sees it
finished. A subclass routes attribute lookups of ``_condition`` that miss to
``_make_condition`` (AsyncResult.__getattr__).
"""

import concurrent.futures
import threading

# concurrent.futures.Future's states (module constants of concurrent.futures._base).
_FUTURE_PENDING = "PENDING"
_FUTURE_ENDED = ("CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED")
# Guards the making of a result's Future Condition against its completion without one
# (LazyFuture._future_finished): one lock for all, held for a few bytecodes.
_CONDITION_MADE = threading.Lock()


class LazyFuture(concurrent.futures.Future):
    """The Future state of an AsyncResult (see the module's docstring); ``_future_init``
    stands for ``Future.__init__``."""

    def _future_init(self):
        """What Future.__init__ sets, but the Condition and the lists of waiters and
        callbacks (Future reaches those only through the Condition)."""
        self._state = _FUTURE_PENDING
        self._result = None
        self._exception = None

    def _make_condition(self):
        with _CONDITION_MADE:
            cond = self.__dict__.get("_condition")
            if cond is None:
                self._waiters = []
                self._done_callbacks = []
                cond = self.__dict__["_condition"] = threading.Condition()
        return cond

    def _future_finished(self):
        """Future.set_result(self, None), once (later calls do nothing)."""
        with _CONDITION_MADE:
            if "_condition" not in self.__dict__:
                if self._state == _FUTURE_PENDING:
                    self._state = "FINISHED"  # no waiter, no callback: nobody to tell
                return
        try:
            concurrent.futures.Future.set_result(self, None)
        except concurrent.futures.InvalidStateError:
            pass

    def done(self):
        """Whether the request has ended (every engine answered, or it failed)."""
        return self._state in _FUTURE_ENDED
