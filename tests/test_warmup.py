"""Compilation as a user meets it (tsrnn._warmup): warmup() compiles everything fit and
predict use, the first-compile notice shows once and only on a real compile, and a
Ctrl-C during a compilation is deferred until Numba's state is whole again."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tsrnn
from tsrnn import _warmup, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(script, cache_dir, timeout=900):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


WARMUP = """
    import tsrnn
    report = tsrnn.warmup()
    print(len(report["compiled"]), report["cache_dir"])
"""

#: Fits and predicts unlike warmup's own (sizes, cells, options), counting every
#: compilation of a tsrnn function in the process.
AFTER_WARMUP = """
    import warnings
    import numpy as np
    from numba.core import event
    from sklearn.exceptions import ConvergenceWarning
    from tsrnn import RNNRegressor

    compiled = []

    class Counter(event.Listener):
        def on_start(self, evt):
            func = getattr(evt.data["dispatcher"], "py_func", None)
            if getattr(func, "__module__", "").startswith("tsrnn"):
                compiled.append(func.__qualname__)

        def on_end(self, evt):
            pass

    event.register("numba:compile", Counter())
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 20, 3)).astype(np.float32)
    y = X[:, -1, 0]
    for cell, extra in [("gru", {}), ("rnn", {"nonlinearity": "relu"}),
                        ("lstm", {"early_stopping": True, "n_iter_no_change": 1}),
                        ("lstm", {"solver": "sgd", "num_layers": 3, "dropout": 0.1}),
                        ("gru", {"solver": "rmsprop", "bptt_steps": 5, "loss": "huber"})]:
        model = RNNRegressor(cell=cell, hidden_size=24, max_iter=2, random_state=0,
                             batch_size=64, **extra).fit(X, y)
        model.partial_fit(X[:70], y[:70])
        for n in (1, 3, 64, 150):
            model.predict(X[:n].astype(np.float64))
    model = RNNRegressor(hidden_size=16, max_iter=1, random_state=0).fit(X[:, :, 0], y)
    model.predict(X[:1, :, 0])
    print(len(compiled), compiled)
"""


def test_warmup_compiles_what_later_fits_and_predicts_use(tmp_path):
    cold = run_child(WARMUP, tmp_path)
    n_compiled, cache_dir = cold.stdout.split()
    assert int(n_compiled) > 0
    assert cache_dir.startswith(str(tmp_path))
    assert cold.stderr.count("compiling kernels for first use") == 1, cold.stderr
    assert "they are cached for later runs" in cold.stderr

    warm = run_child(AFTER_WARMUP, tmp_path)
    assert warm.stdout.startswith("0 "), warm.stdout  # nothing left to compile
    assert "compiling kernels" not in warm.stderr, warm.stderr  # a warm cache is silent

    again = run_child(WARMUP, tmp_path)
    assert again.stdout.split()[0] == "0"
    assert again.stderr == ""


def test_warmup_rejects_unknown_dtypes():
    for bad in (("float16",), (), ("float32", "int8")):
        with pytest.raises(ValueError, match="dtypes must be"):
            tsrnn.warmup(bad)


def test_warmup_is_public_and_lazy():
    assert "warmup" in tsrnn.__all__ and tsrnn.warmup is _warmup.warmup


def test_cli_warmup_reports_the_cache(capsys):
    assert cli.main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert "kernels ready for float32" in out and "cache:" in out
    assert cli.main(["warmup", "--dtype", "float16"]) == 2


def test_sigint_inside_a_deferred_section_is_raised_on_exit():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with _warmup.sigint_deferred():
            signal.raise_signal(signal.SIGINT)
            reached.append(1)  # not interrupted half-way
    assert reached == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_during_numbas_compiler_lock_waits_for_its_release():
    from numba.core import event

    reached = []
    with _warmup.compile_guard("fit"):
        with pytest.raises(KeyboardInterrupt):
            with event.trigger_event("numba:compiler_lock"):  # as a compilation does
                with event.trigger_event("numba:compiler_lock"):  # nested
                    signal.raise_signal(signal.SIGINT)
                    reached.append("inner")
                reached.append("outer")
        # outside a guard Numba's lock is left alone
    with pytest.raises(KeyboardInterrupt):
        with event.trigger_event("numba:compiler_lock"):
            signal.raise_signal(signal.SIGINT)
            reached.append("unguarded")
    assert reached == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_custom_sigint_handler_is_deferred_and_then_called():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with _warmup.sigint_deferred():
            signal.raise_signal(signal.SIGINT)
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_guard_is_reentrant_and_restores_the_task():
    with _warmup.compile_guard("fit"):
        with _warmup.compile_guard("predict"):
            assert _warmup._local.task == "fit"  # the outermost call names the work
        assert _warmup._guard_depth() == 1
    assert _warmup._guard_depth() == 0


def test_fit_and_predict_run_inside_the_guard(monkeypatch):
    from tsrnn import network

    depths = []
    real = network.predict

    def spy(*args, **kwargs):
        depths.append(_warmup._guard_depth())
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "predict", spy)
    X = np.random.default_rng(0).normal(size=(40, 6))
    model = tsrnn.RNNRegressor(hidden_size=4, max_iter=2, early_stopping=True,
                               n_iter_no_change=5, random_state=0)
    with pytest.warns(Warning):
        model.fit(X, X[:, -1])
    model.predict(X)
    assert depths and all(d >= 1 for d in depths)
