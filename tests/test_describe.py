"""``benchbench describe``: resolved config, protocols, deviations and parameter counts, built on the meta device
without training and without the dataset's files (the tests' data folder is empty)."""

from __future__ import annotations

import json

import pytest

from benchbench.describe import describe, parameter_table, render
from benchbench.errors import BenchbenchError


def _modules(info: dict) -> dict[str, tuple[int, int]]:
    return {r["module"]: (r["trainable"], r["frozen"]) for r in info["modules"] if not r.get("detail")}


def test_pdae_paper_on_celeba_without_files() -> None:
    info = describe("pdae", "celeba", "paper")
    mods = _modules(info)
    assert mods["encoder"] == (1_487_104, 0)  # PDAE's CelebA-64 encoder (issue 11 acceptance)
    assert mods["shift"][0] + mods["label_emb"][0] == 52_007_811  # G_psi with its label embedding
    assert mods["dpm"][0] == 0 and mods["dpm"][1] > 0  # the frozen pre-trained DPM, random weights here
    assert mods["total"] == (sum(v[0] for k, v in mods.items() if k != "total"),
                             sum(v[1] for k, v in mods.items() if k != "total"))
    assert info["data_spec"]["version"] == "files not read" and len(info["data_spec"]["attr_names"]) == 40
    assert info["config"]["eval"]["tad"]["protocol"] == "benchbench" and "tad" in info["metrics"]
    assert info["protocol"]["metric.tad"].startswith("benchbench:")
    assert any("eval.tad.protocol" in d for d in info["deviations"])
    assert info["built_on"].startswith("meta")
    detail = {r["module"]: r["frozen"] for r in info["modules"] if r.get("detail")}
    assert sum(detail.values()) == mods["dpm"][1] and "dpm.unet" in detail  # the stage's parts, not in the total
    assert "  dpm.unet" in render(info)


def test_overrides_reach_config_protocol_and_deviations() -> None:
    info = describe("betavae", "shapes3d", "quick", ("model.beta=8", "eval.pmg.protocol=pdae"))
    assert info["config"]["model"]["beta"] == 8.0
    assert any(d.startswith("β=8 is benchbench's choice") for d in info["deviations"])
    assert any(d.startswith("preset 'quick'") for d in info["deviations"])
    assert info["protocol"]["metric.factor_codes"].startswith("raw")
    assert set(_modules(info)) == {"encoder", "decoder", "total"}
    text = render(info)
    assert "Deviations from the paper setting:" in text and "model.beta = 8.0" in text


def test_describe_tad_protocol_on_celeba() -> None:
    info = describe("infovae", "celeba", "paper", ("eval.tad.protocol=infodiffusion",))
    assert "KFold(5, shuffle=True, random_state=0)" in info["protocol"]["metric.tad"]
    assert any("unflipped" in d for d in info["deviations"])
    assert any("U-Net-shaped VAE" in d for d in info["deviations"])


def test_cli_json_and_errors(invoke) -> None:
    code, out, _ = invoke(["describe", "--method", "random", "--dataset", "mpi3d", "--preset", "smoke", "--json"])
    assert code == 0
    info = json.loads(out)
    assert info["modules"][-1]["module"] == "total" and info["data_spec"]["factor_sizes"] == [6, 6, 2, 3, 3, 40, 40]
    code, _, err = invoke(["describe", "--method", "betavea", "--dataset", "shapes3d"])
    assert code != 0 and "betavae" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(BenchbenchError):
        describe("betavae", "shapes3d", "paper", ("eval.tad.protocol=nope",))


def test_parameter_table_counts_own_parameters() -> None:
    import torch

    model = torch.nn.Module()
    model.lin = torch.nn.Linear(2, 3)
    model.w = torch.nn.Parameter(torch.zeros(4), requires_grad=False)
    assert parameter_table(model) == [{"module": "lin", "trainable": 9, "frozen": 0},
                                      {"module": "(own)", "trainable": 0, "frozen": 4},
                                      {"module": "total", "trainable": 9, "frozen": 4}]


@pytest.mark.parametrize("method", ["diffae", "pdae", "disdiff", "infodiffusion", "betavae", "infovae", "random"])
@pytest.mark.parametrize("dataset", ["celeba", "shapes3d"])
def test_every_method_describes_at_paper_size(method: str, dataset: str) -> None:
    """Every method's paper preset builds on the meta device and reports its protocol (a sampler's grid is computed
    from the schedule, which must hold values even there) and its deviations."""
    info = describe(method, dataset, "paper")
    assert info["built_on"].startswith("meta")
    assert _modules(info)["total"][0] > 0
    if method in {"diffae", "pdae", "disdiff", "infodiffusion"}:
        assert "method.sampler" in info["protocol"] and info["deviations"]


def test_diffae_paper_semantic_encoder_count() -> None:
    # phizaz/diffae BeatGANsEncoderModel at CelebA-64 (issue 11 acceptance)
    assert _modules(describe("diffae", "celeba", "paper"))["encoder"] == (19_320_512, 0)


def test_stage_parts_are_listed_outside_the_total() -> None:
    info = describe("disdiff", "shapes3d", "smoke")  # a stage artifact asked for its online weights
    assert _modules(info)["frozen"][0] == 0 and any(r["module"] == "frozen.unet" for r in info["modules"])
