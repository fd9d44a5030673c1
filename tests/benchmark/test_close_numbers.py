"""The bound the Ray tests compare the executors with (conftest.assert_close_numbers): scores within
rtol 1e-5 + atol 1e-7, maps within one float16 step, everything else (ids, rows, NaN pattern) exact."""
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmark.store.files import MapShard, write_map_shard

COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "value"]


def _run(out, values, ids=("001", "002", "003"), maps=None):
    rows = pd.DataFrame({"dataset": "phantom", "split": "test", "model": "m", "explainer": "gradcam",
                         "metric": "pointing_game", "image_id": list(ids), "value": values})[COLUMNS]
    (out / "scores" / "m-gradcam-pointing_game-k").mkdir(parents=True)
    (out / "maps" / "m-gradcam-k").mkdir(parents=True)
    rows.to_csv(out / "scores.csv", index=False)
    rows.to_csv(out / "scores" / "m-gradcam-pointing_game-k" / "shard-00000.csv", index=False)
    maps = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8) if maps is None else maps
    write_map_shard(out / "maps" / "m-gradcam-k" / "shard-00000.npy",
                    MapShard(maps, list(ids), np.zeros(3), np.zeros(3)))
    return out


VALUES = np.array([0.25, np.nan, 0.123456789])


def test_close_numbers_holds_within_the_bound_and_fails_outside_it(tmp_path, run_store):
    ref = _run(tmp_path / "ref", VALUES)
    run_store.assert_close_numbers(_run(tmp_path / "same", VALUES), ref)
    run_store.assert_close_numbers(_run(tmp_path / "seventh", VALUES * (1 + 3e-7)), ref)  # below the 6th digit
    bad = {"fifth digit": dict(values=VALUES * (1 + 1e-4)),
           "NaN pattern": dict(values=np.array([0.25, 0.5, 0.123456789])),
           "an id": dict(values=VALUES, ids=("001", "002", "004")),
           "a map": dict(values=VALUES, maps=np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8) * 0.99)}
    for what, kw in bad.items():
        out = _run(tmp_path / what.replace(" ", "_"), **kw)
        with pytest.raises(AssertionError):
            run_store.assert_close_numbers(out, ref)
    # a shard the other run lacks
    extra = _run(tmp_path / "extra", VALUES)
    shutil.copy(extra / "scores" / "m-gradcam-pointing_game-k" / "shard-00000.csv",
                extra / "scores" / "m-gradcam-pointing_game-k" / "shard-00001.csv")
    with pytest.raises(AssertionError):
        run_store.assert_close_numbers(extra, ref)
