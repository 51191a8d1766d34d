"""The protocol and deviation record of a run: how its numbers are produced and where that still differs from the
paper setting. ``benchbench describe`` prints it, every ``result.json`` carries it, ``report`` shows the deviations.

Parts: the method's own ``protocol()`` (sampler, inversion, generator) and ``deviations()`` (benchbench.method), and
the metric protocols, which come from the eval config (TAD protocol, PMG grid, FID implementation, sample sizes) and
the code rule the factor metrics see (``benchbench.method.CODE_RULES``). Nothing here trains or reads data.
"""

from __future__ import annotations

from typing import Any

from benchbench.config import RunConfig
from benchbench.datasets.base import DataSpec
from benchbench.method import CODE_RULES
from benchbench.metrics.settings import EvalConfig, eval_preset
from benchbench.metrics.tad_protocols import describe as describe_tad
from benchbench.metrics.tad_protocols import resolve_settings
from benchbench.registry import metrics

# The published evaluation sizes (metrics.md §0, §8, §9): 10,000 TAD codes, 10,000 FID samples.
PAPER_TAD_IMAGES = 10_000
PAPER_FID_SAMPLES = 10_000


def metric_protocols(cfg: EvalConfig, names: list[str], code_rule: str) -> dict[str, str]:
    """{part: description} of the metric protocols the run uses (only for the metrics in ``names``)."""
    out: dict[str, str] = {}
    needs = {metrics.get(n).meta.get("needs") for n in names}
    if "codes+factors" in needs:
        out["factor_codes"] = f"{code_rule}: {CODE_RULES.get(code_rule, code_rule)}"
        out["factor_metrics"] = ("disentanglement_lib implementations, np.random.RandomState(eval.seed="
                                 f"{cfg.seed}); sample sizes stored with each number")
    if "tad" in names:
        out["tad"] = describe_tad(cfg.tad)
    if "fid" in names:
        from benchbench.metrics.fid_protocols import counts, describe

        f = cfg.fid
        gen, real = counts(f)
        reference = "the whole training split" if real == 0 else f"{real} training images drawn with seed 0"
        out["fid"] = (f"protocol={f.protocol}: {describe(f.protocol)}; {gen} samples in resumable chunks of {f.chunk} "
                      f"(batch {f.gen_batch}) vs {reference}, never flipped")
    if "pmg" in names:
        p = cfg.pmg
        out["pmg"] = (f"protocol={p.protocol}: {p.num_images} images, grid={p.grid}, noise={p.noise}; scalar = uniform "
                      "mean over all T steps (linear interpolation between grid steps unless grid=full)"
                      if p.protocol == "benchbench" else
                      "protocol=pdae: PDAE's figure (sampler/gap_measure.py): 1,000 images drawn with replacement, "
                      "all T steps, uniform noise; scalar = uniform mean over all T steps")
    return out


def metric_deviations(cfg: EvalConfig, names: list[str], code_rule: str, preset: str) -> list[str]:
    """Short lines: where the metric protocols of this eval config differ from the papers' evaluation."""
    lines = []
    if preset != "paper" and cfg != eval_preset("paper"):
        lines.append(f"evaluation sample sizes of the {preset!r} preset, smaller than the papers' reference sizes")
    if "dci" in names and cfg.dci.mode == "fast":
        lines.append("DCI mode fast: sklearn's GBT trees grown from histograms in sklearn's arithmetic, equal to exact "
                     "bit for bit on every case of benchmarks/bench_dci_agreement.py; papers used exact")
    if "tad" in names:
        tad = resolve_settings(cfg.tad)
        if tad.protocol == "benchbench":
            lines.append("TAD under benchbench's protocol (first test-split images, one pass), while published CelebA "
                         "TADs used infodiffusion or disdiff (--set eval.tad.protocol=...)")
        elif tad.protocol == "infodiffusion":
            lines.append("TAD codes of unflipped images (InfoDiffusion saved latents of randomly flipped train images)")
            if tad.num_images != PAPER_TAD_IMAGES:
                lines.append(f"TAD on {tad.num_images} train codes (InfoDiffusion: {PAPER_TAD_IMAGES})")
        else:
            lines.append("TAD images: our seeded draw from all images (DisDiff's test_celeba.npz is unpublished)")
    if "fid" in names:
        from benchbench.metrics.fid_protocols import COUNTS, counts

        if cfg.fid.protocol == "benchbench":
            lines.append("FID under benchbench's protocol (torch-fidelity); InfoDiffusion's published FIDs used "
                         "clean-fid (--set eval.fid.protocol=infodiffusion)")
        elif cfg.fid.protocol == "disdiff-quirk":
            lines.append("FID under DisDiff's [0, 255]-floats quirk: comparable with no other FID")
        gen, real = counts(cfg.fid)
        if (gen, real) != COUNTS[cfg.fid.protocol]:
            want = COUNTS[cfg.fid.protocol]
            lines.append(f"FID on {gen} samples vs {real or 'all'} reference images (protocol {cfg.fid.protocol}: "
                         f"{want[0]} vs {want[1] or 'the whole training split'})")
    if "pmg" in names and cfg.pmg.protocol != "pdae":
        lines.append(f"posterior mean gap on {cfg.pmg.num_images} images, {cfg.pmg.noise} noise, grid={cfg.pmg.grid} "
                     "(PDAE's figure: --set eval.pmg.protocol=pdae)")
    if code_rule == "pca+standardized" and {"factorvae", "betavae_score"} & set(names):
        lines.append("FactorVAE prunes standardised PCA scores (DisDiff pruned the raw scores: a PC with std < 0.05 "
                     "it drops is kept here)")
    return lines


def record(cfg: RunConfig, spec: DataSpec, model: Any, names: list[str]) -> dict[str, Any]:
    """{"protocol": {...}, "deviations": [...]} of one run: the method's parts, then the metrics' (from ``cfg.eval``).

    Args:
        cfg: the resolved run config.
        spec: the dataset's facts (a synthetic look-alike is itself a deviation).
        model: the built method (``protocol()``, ``deviations()``, ``code_rule``); any nn.Module works.
        names: the metrics the run computes.
    """
    rule = getattr(model, "code_rule", "raw")
    method_protocol = model.protocol() if hasattr(model, "protocol") else {}
    protocol = {**{f"method.{k}": v for k, v in method_protocol.items()},
                **{f"metric.{k}": v for k, v in metric_protocols(cfg.eval, names, rule).items()}}
    deviations = list(model.deviations()) if hasattr(model, "deviations") else []
    if cfg.preset != "paper":
        deviations.insert(0, f"preset {cfg.preset!r}: a reduced setting, not the paper's (use --preset paper)")
    if spec.source == "synthetic":
        deviations.insert(0, f"{spec.name}: synthetic look-alike data, never comparable with published numbers")
    deviations += metric_deviations(cfg.eval, names, rule, cfg.preset)
    return {"protocol": protocol, "deviations": deviations}
