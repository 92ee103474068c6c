"""RNNForecaster.save/load: round trips of every kind of forecaster, hostile files."""

import copy
import io
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from tsrnn import RNNForecaster
from tsrnn.forecasting import saving

FAST = dict(max_iter=2, hidden_size=8, random_state=0)


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def hourly(n=400, seed=0, start="2024-01-01", tz=None):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="h", tz=tz, name="time")
    t = np.arange(n)
    return pd.DataFrame({"temp": 10 + np.sin(2 * np.pi * t / 24) + 0.2 * rng.normal(size=n),
                         "wind": np.cos(t / 7.0), "holiday": (t % 50 == 0) * 1.0}, index=idx)


def long_panel():
    parts = [hourly(300, 1).assign(store="a"), hourly(260, 2, "2024-01-03").assign(store="b")]
    return pd.concat([p.reset_index() for p in parts], ignore_index=True)


def future_for(fc, frame):
    stamps = pd.date_range(frame.index[-1] + pd.Timedelta(hours=1), periods=fc.horizon,
                           freq="h", tz=frame.index.tz)
    return pd.DataFrame({"holiday": 0.0}, index=stamps)


def forecasters():
    frame = hourly()
    panel = long_panel()
    static = pd.DataFrame({"size": [1.0, 2.0]}, index=["a", "b"])
    months = pd.period_range("2000-01", periods=120, freq="M")
    monthly = pd.Series(np.sin(np.arange(120) / 2.0) + np.arange(120) / 50, index=months,
                        name="sales")
    steps = pd.Series(np.cos(np.arange(200) / 3.0), index=pd.RangeIndex(0, 200))
    return {
        "covariates": (RNNForecaster(lookback=24, horizon=4, **FAST).fit(
            frame, target="temp", exog="wind", future_covariates="holiday"),
            dict(future=future_for(RNNForecaster(horizon=4), frame)),
            dict(history=frame.iloc[:300], future=future_for(RNNForecaster(horizon=4),
                                                             frame.iloc[:300]))),
        "recursive_tz": (RNNForecaster(lookback=12, horizon=3, strategy="recursive",
                                       highway=False, **FAST).fit(
            hourly(tz="Europe/Paris")[["temp"]]), {}, {}),
        "panel": (RNNForecaster(lookback=24, horizon=4, series_identity=True, **FAST).fit(
            panel[["store", "time", "temp"]], id_column="store", time_column="time",
            static=static), {}, dict(ids=["b"])),
        "no_intervals": (RNNForecaster(lookback=12, horizon=3, coverage=None,
                                       shrink_to_naive=False, **FAST).fit(monthly), {}, {}),
        "integer_steps": (RNNForecaster(lookback=20, horizon=5, **FAST).fit(steps), {}, {}),
    }


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return forecasters()


@pytest.mark.parametrize("name", ["covariates", "recursive_tz", "panel", "no_intervals",
                                  "integer_steps"])
def test_round_trip_predicts_the_same(name, fitted, tmp_path):
    fc, first, second = fitted[name]
    path = tmp_path / "fc.npz"
    fc.save(path)
    loaded = RNNForecaster.load(path)
    assert loaded.get_params() == fc.get_params()
    pd.testing.assert_frame_equal(loaded.predict(**first), fc.predict(**first))
    pd.testing.assert_frame_equal(loaded.predict(**second), fc.predict(**second))
    for attr in ("ids_", "is_panel_", "normalization_", "calendar_", "exog_",
                 "future_covariates_", "static_", "freq_", "last_timestamp_",
                 "n_training_windows_"):
        assert getattr(loaded, attr) == getattr(fc, attr), attr
    np.testing.assert_array_equal(loaded.scale_floor_, fc.scale_floor_)


def test_unfitted_and_unstorable_forecasters_are_refused(tmp_path):
    with pytest.raises(NotFittedError):
        RNNForecaster().save(tmp_path / "x.npz")
    frame = hourly()
    data = {("a", 1): frame["temp"], ("b", 2): frame["temp"] * 2}
    fc = RNNForecaster(lookback=24, horizon=4, **FAST).fit(data)
    with pytest.raises(ValueError, match=r"series id \('a', 1\) is a tuple"):
        fc.save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def with_metadata(members, meta):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(json.dumps(meta)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, payload in members:
            zf.writestr(name, buf.getvalue() if name == "__metadata__.npy" else payload)
    return out.getvalue()


def metadata(members):
    payload = dict(members)["__metadata__.npy"]
    return json.loads(str(np.lib.format.read_array(io.BytesIO(payload))))


BAD = {"deleted": "DELETE", "null": None, "a string": "x", "a list": [], "negative": -1,
       "huge": 10**30, "a float": 0.5, "an object": {}}


@pytest.mark.parametrize("name", ["covariates", "panel"])
def test_every_fitted_field_is_checked(name, fitted, tmp_path):
    fc, first, _ = fitted[name]
    path = tmp_path / "fc.npz"
    fc.save(path)
    members = members_of(path)
    meta = metadata(members)
    expected = fc.predict(**first)
    outcomes = {"refused": 0, "same": 0}
    fields = [("fitted", k) for k in meta["fitted"]]
    fields += [("fitted", "history", k) for k in meta["fitted"]["history"]]
    fields += [("params", k) for k in meta["params"]]
    for field in fields:
        for value in BAD.values():
            mutated = copy.deepcopy(meta)
            target = mutated
            for key in field[:-1]:
                target = target[key]
            if value == "DELETE":
                del target[field[-1]]
            else:
                target[field[-1]] = value
            path.write_bytes(with_metadata(members, mutated))
            try:
                loaded = RNNForecaster.load(path)
            except ValueError as exc:
                assert "tsrnn model file" in str(exc), (field, value, exc)
                outcomes["refused"] += field[0] == "fitted"
                continue
            got = loaded.predict(**first)
            if field[0] == "params":  # a valid parameter, as set_params would set it
                continue
            # fitted state: the same forecasts (a renamed column is a harmless edit)
            np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
            assert got.index.equals(expected.index), (field, value)
            outcomes["same"] += 1
    assert outcomes["refused"] > 5 * outcomes["same"], outcomes


def test_arrays_are_checked_against_the_design(fitted, tmp_path):
    fc, _, _ = fitted["panel"]
    path = tmp_path / "fc.npz"
    fc.save(path)
    members = members_of(path)
    for name, array in [("scale_floor.npy", np.zeros(2)),
                        ("scale_floor.npy", np.ones(3)),
                        ("residuals.npy", -np.ones_like(fc.residuals_)),
                        ("shrinkage.npy", np.full(fc.horizon, 2.0))]:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for member, payload in members:
                zf.writestr(member, buf.getvalue() if member == name else payload)
        path.write_bytes(out.getvalue())
        with pytest.raises(ValueError, match=name.removesuffix(".npy")):
            RNNForecaster.load(path)


def test_a_regressor_file_is_not_a_forecaster_file(fitted, tmp_path):
    fc, _, _ = fitted["covariates"]
    fc.regressor_.save(tmp_path / "net.npz")
    with pytest.raises(ValueError, match="not a tsrnn model file"):
        RNNForecaster.load(tmp_path / "net.npz")
    assert saving.FORECASTER_FORMAT == "tsrnn.RNNForecaster"
