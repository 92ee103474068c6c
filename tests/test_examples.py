"""The example scripts run end to end on the shipped data, as the README promises."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: A hung or runaway example fails instead of stalling CI (each takes seconds to a
#: minute on 2 cores; speed itself is the benchmarks' business, not the tests').
TIMEOUT_SECONDS = 600


@pytest.mark.slow
@pytest.mark.parametrize("script, expect", [
    ("forecast_weather.py", ["| tsrnn |", "| seasonal_naive |", "interval contained"]),
    ("forecast_sp500.py", ["| tsrnn |", "| naive |", "Volatility forecast"]),
    ("grid_search.py", ["GridSearchCV", "Best:", "Test MAE"]),
])
def test_example_runs(script, expect, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    # run from a scratch directory so written figures land there
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    for text in expect:
        assert text in done.stdout, (text, done.stdout[-3000:])


def readme_quick_start() -> str:
    """The Python blocks of the README's Quick start section, joined into one script."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2, "the README's Quick start lost its code blocks"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path):
    """The README's Quick start code runs as written (in a scratch directory: it saves
    a model file)."""
    script = readme_quick_start() + "\nprint('fitted', type(fc).__name__, len(result.overall))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fitted RNNForecaster" in done.stdout, done.stdout[-3000:]
    assert (tmp_path / "model.npz").exists()
