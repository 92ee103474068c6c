"""Kernel compilation as a user meets it: a notice, a Ctrl-C that cannot break Numba,
and :func:`warmup` to compile ahead of time.

Numba compiles the kernels on first use and caches them on disk (``cache=True``), so
only a process with an empty cache pays (about 20 s for a first fit on 2 idle cores,
see ``COMPILE_SECONDS``); a warm process loads them in about 0.5 s.

:func:`compile_guard` wraps every public call that may reach a kernel
(``RNNRegressor.fit``/``partial_fit``/``predict``, :func:`warmup`). Inside it:

* The first real compilation of a tsrnn kernel in the process prints one line on
  stderr, ``tsrnn: compiling kernels for first use (about N s); they are cached for
  later runs``. Numba's ``numba:compile`` event fires only on a cache miss (a kernel
  loaded from the cache compiles nothing), so a warm cache prints nothing.
* Ctrl-C is deferred while Numba holds its compiler lock (compiling, or loading from
  the cache), in the main thread: a ``KeyboardInterrupt`` raised half-way through
  Numba's compiler or its registries leaves them corrupt for the rest of the process
  (every later fit then failed with ``KeyError: duplicate registration``, or "no
  compiled object yet"). The interrupt is raised as soon as the outermost compilation
  ends, when Numba's state is whole again: the call then fails with
  ``KeyboardInterrupt`` as usual and the next one works. Listening to
  ``numba:compiler_lock`` rather than guessing signatures keeps this right whatever the
  kernels become.

:func:`sigint_deferred` is the same deferral for short sections of tsrnn itself that
must not be cut in half (the end-of-epoch bookkeeping of :mod:`tsrnn.training`).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings

__all__ = ["COMPILE_SECONDS", "compile_guard", "sigint_deferred", "warmup"]

#: Seconds a cold compilation takes, by task, for the notice: measured with an empty
#: NUMBA_CACHE_DIR on 2 idle cores of an AMD EPYC (AVX-512): the first small fit
#: 17-18 s (kernels forward and backward), tsrnn.warmup() 22 s (fit, predict and
#: every solver); about twice that while other jobs share the cores.
COMPILE_SECONDS = {"fit": 20, "predict": 8, "warmup": 25}

NOTICE = ("tsrnn: compiling kernels for first use (about {seconds} s); they are cached "
          "for later runs")
INTERRUPT_NOTICE = ("tsrnn: interrupt received; it takes effect when the kernel "
                    "compilation (or loading) in progress ends, which cannot be stopped "
                    "half-way")

_local = threading.local()  # guards: active compile_guard depth; task; locks: lock depth
_setup_lock = threading.Lock()
_process = {"registered": False, "noticed": False, "numba_ready": False}


# --------------------------------------------------------------------------
# SIGINT deferral
# --------------------------------------------------------------------------


class _Deferral:
    """A SIGINT handler that records the signal instead of raising (main thread)."""

    def __init__(self, previous):
        self.previous = previous
        self.pending = False

    def __call__(self, signum, frame):
        if not self.pending:
            print(INTERRUPT_NOTICE, file=sys.stderr, flush=True)
        self.pending = True


def _install_deferral():
    """Replace a Python-level SIGINT handler by a :class:`_Deferral`; None if there is
    nothing to defer (not the main thread, SIG_IGN/SIG_DFL, or already deferred)."""
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread runs Python signal handlers
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or isinstance(previous, _Deferral):
        return None
    deferral = _Deferral(previous)
    signal.signal(signal.SIGINT, deferral)
    return deferral


def _remove_deferral(deferral) -> None:
    """Put the previous handler back and call it if a SIGINT arrived meanwhile (the
    default handler raises KeyboardInterrupt here)."""
    if deferral is None:
        return
    signal.signal(signal.SIGINT, deferral.previous)
    if deferral.pending:
        deferral.previous(signal.SIGINT, sys._getframe(1))


class sigint_deferred:
    """Context manager: a Ctrl-C inside takes effect (KeyboardInterrupt) on exit."""

    __slots__ = ("_deferral",)

    def __enter__(self):
        self._deferral = _install_deferral()
        return self

    def __exit__(self, *exc):
        _remove_deferral(self._deferral)
        return False


# --------------------------------------------------------------------------
# Numba event listeners
# --------------------------------------------------------------------------


def _guard_depth() -> int:
    return getattr(_local, "guards", 0)


def _listeners():
    from numba.core import event

    class CompilerLockListener(event.Listener):
        """Defers SIGINT from the outermost acquisition of Numba's compiler lock to
        its release, inside a compile_guard of the main thread."""

        def on_start(self, evt):
            depth = getattr(_local, "locks", 0)
            _local.locks = depth + 1
            if depth == 0:
                _local.lock_deferral = _install_deferral() if _guard_depth() else None

        def on_end(self, evt):
            depth = getattr(_local, "locks", 1) - 1
            _local.locks = depth
            if depth == 0:
                deferral, _local.lock_deferral = getattr(_local, "lock_deferral", None), None
                # the lock is released: Numba's state is whole, an interrupt is safe
                _remove_deferral(deferral)

    class CompileListener(event.Listener):
        """Prints the notice at the first real compilation of a tsrnn kernel."""

        def on_start(self, evt):
            if _process["noticed"] or not _guard_depth():
                return
            dispatcher = (evt.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if module.split(".")[0] != "tsrnn":
                return
            _process["noticed"] = True
            seconds = COMPILE_SECONDS.get(getattr(_local, "task", "fit"),
                                          COMPILE_SECONDS["fit"])
            print(NOTICE.format(seconds=seconds), file=sys.stderr, flush=True)

        def on_end(self, evt):
            pass

    return CompilerLockListener(), CompileListener()


def _register() -> None:
    with _setup_lock:
        if _process["registered"]:
            return
        from numba.core import event

        lock_listener, compile_listener = _listeners()
        event.register("numba:compiler_lock", lock_listener)
        event.register("numba:compile", compile_listener)
        _process["registered"] = True


def _prepare_numba() -> None:
    """Numba's one-time set-up that runs outside its compiler lock (extension entry
    points, the thread pool), done once with SIGINT deferred."""
    if _process["numba_ready"]:
        return
    import numba
    from numba.core import entrypoints

    with sigint_deferred():
        entrypoints.init_all()
        numba.get_num_threads()  # launches the threading layer
    _process["numba_ready"] = True


class compile_guard:
    """Context manager around a public call that may compile or load kernels.

    ``task`` ('fit', 'predict', 'warmup') picks the time quoted by the notice. Entering
    costs a counter once the listeners exist (it is on the path of every predict).
    """

    __slots__ = ("_previous_task", "task")

    def __init__(self, task: str = "fit"):
        self.task = task

    def __enter__(self):
        if not _process["registered"]:
            _register()
        if not _process["numba_ready"]:
            _prepare_numba()
        depth = getattr(_local, "guards", 0)
        self._previous_task = getattr(_local, "task", None)
        if depth == 0:
            _local.task = self.task
        _local.guards = depth + 1
        return self

    def __exit__(self, *exc):
        _local.guards -= 1
        _local.task = self._previous_task
        return False


# --------------------------------------------------------------------------
# warmup
# --------------------------------------------------------------------------

DTYPES = ("float32", "float64")


def _count_compiles():
    """A listener counting real compilations of tsrnn functions (and its list)."""
    from numba.core import event

    class Counter(event.Listener):
        def __init__(self):
            self.names = []

        def on_start(self, evt):
            dispatcher = (evt.data or {}).get("dispatcher")
            func = getattr(dispatcher, "py_func", None)
            if (getattr(func, "__module__", "") or "").split(".")[0] == "tsrnn":
                self.names.append(func.__qualname__)

        def on_end(self, evt):
            pass

    return Counter()


def cache_dir() -> str | None:
    """Where Numba caches tsrnn's kernels (``NUMBA_CACHE_DIR`` or ``__pycache__``
    beside the modules, or a user cache folder if that is not writable)."""
    from tsrnn._kernels import cpu

    cache = getattr(cpu._stack_predict, "_cache", None)
    return getattr(cache, "cache_path", None)


def warmup(dtypes=("float32",), *, verbose: bool = False) -> dict:
    """Compile (or load from Numba's on-disk cache) every kernel that ``fit`` and
    ``predict`` use, ahead of time: for a Docker image build, a CI cache, or before a
    latency-sensitive service starts.

    It runs the public paths on tiny arrays, so it covers whatever the kernels
    become: for each dtype, a fit of every cell ('rnn' with both nonlinearities,
    'lstm', 'gru') with and without early stopping, every solver, 2-D and 3-D inputs,
    stacked layers with dropout and truncated BPTT, ``partial_fit``, and ``predict`` on
    1 row, on 64 and 100 rows and on more than one predict batch. A warm cache makes it
    take about a second; a cold one about a minute per dtype on 2 cores.

    Parameters
    ----------
    dtypes : sequence of {'float32', 'float64'}, default=('float32',)
        The ``dtype`` parameters to compile for (the models you will fit).
    verbose : bool, default=False
        Print a line per dtype on stderr.

    Returns
    -------
    report : dict
        ``dtypes``, ``seconds`` (total), ``compiled`` (names of the functions that
        were compiled in this call; empty when everything came from the cache) and
        ``cache_dir`` (where the compiled code is stored).

    Examples
    --------
    >>> import tsrnn
    >>> report = tsrnn.warmup()  # doctest: +SKIP
    >>> report["compiled"]  # doctest: +SKIP
    []
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    dtypes = tuple(dtypes)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(
            f"dtypes must be a non-empty sequence of {DTYPES}; got {dtypes!r}."
        )
    from numba.core import event

    counter = _count_compiles()
    t_start = time.perf_counter()
    with compile_guard("warmup"), event.install_listener("numba:compile", counter):
        for dtype in dtypes:
            t_dtype = time.perf_counter()
            n_before = len(counter.names)
            _warm_one_dtype(dtype)
            if verbose:
                n = len(counter.names) - n_before
                what = f"{n} functions compiled" if n else "all loaded from the cache"
                print(f"tsrnn: {dtype} kernels ready in {time.perf_counter() - t_dtype:.1f} s "
                      f"({what})", file=sys.stderr, flush=True)
    return {
        "dtypes": dtypes,
        "seconds": time.perf_counter() - t_start,
        "compiled": list(counter.names),
        "cache_dir": cache_dir(),
    }


def _warm_one_dtype(dtype: str) -> None:
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from tsrnn.estimator import RNNRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2))
    y = rng.standard_normal(40)
    Y = rng.standard_normal((40, 2))
    X2 = rng.standard_normal((40, 6))
    base = dict(hidden_size=4, max_iter=2, batch_size=16, random_state=0, dtype=dtype)
    configs = [dict(cell="rnn"), dict(cell="rnn", nonlinearity="relu"), dict(cell="lstm"),
               dict(cell="gru"),
               dict(cell="lstm", early_stopping=True, validation_fraction=0.25,
                    n_iter_no_change=1),
               dict(cell="gru", solver="sgd"), dict(cell="lstm", solver="rmsprop",
                                                    clip_norm=None),
               dict(cell="lstm", num_layers=2, dropout=0.2, bptt_steps=3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for params in configs:
            model = RNNRegressor(**{**base, **params}).fit(X, y)
            model.predict(X[:1])
        model = RNNRegressor(**base).fit(X.astype(np.float32), Y)
        model.partial_fit(X, Y)
        for n in (1, 64, 100, 1100):  # one row, chunked batches, more than one batch
            model.predict(rng.standard_normal((n, 6, 2)))
        model = RNNRegressor(**{**base, "cell": "gru"}).fit(X2, y)
        model.predict(X2[:1])
        model.predict(np.repeat(X2, 2, axis=0))
