"""`benchbench score`: metrics on arrays a user brings, and clean rejections of bad arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchbench.score import score_arrays


@pytest.fixture
def arrays(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(600, 3))
    codes = factors + 0.05 * rng.normal(size=factors.shape)
    paths = {"codes": tmp_path / "codes.npy", "factors": tmp_path / "factors.npy",
             "npz": tmp_path / "both.npz", "nan": tmp_path / "nan.npy", "short": tmp_path / "short.npy",
             "float": tmp_path / "float_factors.npy", "bad": tmp_path / "bad.npy"}
    np.save(paths["codes"], codes)
    np.save(paths["factors"], factors)
    np.savez(paths["npz"], codes=codes, factors=factors)
    bad = codes.copy()
    bad[3, 1] = np.nan
    np.save(paths["nan"], bad)
    np.save(paths["short"], codes[:500])
    np.save(paths["float"], factors + 0.5)
    paths["bad"].write_bytes(b"garbage")
    return paths


def test_table_and_json(arrays, invoke) -> None:
    code, out, _ = invoke(["score", "--codes", str(arrays["codes"]), "--factors", str(arrays["factors"]),
                           "--metrics", "mig,dci"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("mig ") and lines[1].startswith("dci ")
    assert float(lines[0].split()[1]) > 0.95
    code, out, _ = invoke(["score", "--codes", str(arrays["npz"]), "--factors", str(arrays["npz"]), "--json",
                           "--metrics", "mig"])
    result = json.loads(out)
    assert code == 0 and result["mig"]["value"] > 0.95 and result["mig"]["settings"]["num_bins"] == 20


def test_default_metrics_are_the_array_ones() -> None:
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 3, size=(300, 2))
    res = score_arrays(factors + 0.01 * rng.normal(size=factors.shape), factors)
    assert {"mig", "dci", "sap", "modularity"} <= set(res) and "factorvae" not in res
    assert res["dci"]["value"] > 0.9 and res["dci"]["settings"]["mode"] == "exact"


@pytest.mark.parametrize(
    ("codes", "factors", "extra", "message"),
    [
        ("nan", "factors", [], "NaN"),
        ("short", "factors", [], "rows"),
        ("codes", "float", [], "integer"),
        ("bad", "factors", [], "not a readable"),
        ("missing", "factors", [], "does not exist"),
        ("codes", "factors", ["--metrics", "factorvae"], "benchbench run"),
        ("codes", "factors", ["--metrics", "mgi"], "did you mean"),
        ("codes", "factors", ["--set", "dci.mod=fast"], "did you mean dci.mode"),
    ],
)
def test_bad_arrays_are_rejected_in_one_line(arrays, codes, factors, extra, message, invoke) -> None:
    path = arrays.get(codes, arrays["codes"].parent / "missing.npy")
    code, out, err = invoke(["score", "--codes", str(path), "--factors", str(arrays[factors]), *extra])
    assert code != 0 and out == ""
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and message in err, err
