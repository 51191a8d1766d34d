"""Every config and eval value checked before anything is written: one declarative table of rules.

:data:`RULES` maps dotted-key patterns (``fnmatch``; ``*`` also spans dots, so ``*train.lr`` covers ``train.lr`` and
the ``model.dpm.train.lr`` of a stage) to a :class:`Rule`; the first pattern that matches a key decides. Every float
anywhere must in addition be finite. :func:`check_config` walks a resolved :class:`~benchbench.config.RunConfig` and
raises one :class:`~benchbench.errors.ConfigError` line naming the key, the value and what is allowed.
:func:`check_buildable` then builds the model on the ``meta`` device (no memory, no time) so a resolution or a size
the network cannot take is reported before training rather than as a traceback inside it.

Method-specific cross-field checks stay with the methods (their ``check`` registry entry); this table holds the
rules that are true of a key wherever it appears.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from fnmatch import fnmatchcase
from typing import Any

from benchbench.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """What a value must be.

    Attributes:
        kind: "int" (an integer, not a bool), "float" (a finite number), "choice" or "ints" (a non-empty tuple of
            integers).
        lo, hi: bounds; ``lo_open``/``hi_open`` make them strict.
        choices: the allowed strings of a "choice".
        optional: None is allowed too.
        each: for tuples of numbers, the rule of every element.
        scalar: a single value obeying ``each`` is allowed too.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    each: Rule | None = None
    scalar: bool = False

    def allowed(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.each is not None:
            text = f"a tuple whose every value is {self.each.allowed()}"
            if self.scalar:
                text = f"{self.each.allowed()}, or {text}"
        else:
            noun = "an integer" if self.kind == "int" else "a finite number"
            parts = []
            if self.lo is not None:
                parts.append(f"{'>' if self.lo_open else '>='} {_num(self.lo)}")
            if self.hi is not None:
                parts.append(f"{'<' if self.hi_open else '<='} {_num(self.hi)}")
            if self.lo is not None and self.hi is not None:
                lb, rb = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
                text = f"{noun} in {lb}{_num(self.lo)}, {_num(self.hi)}{rb}"
            else:
                text = f"{noun} {' and '.join(parts)}".rstrip()
        return text + (" or None" if self.optional else "")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.each is not None and self.scalar and not isinstance(value, (tuple, list)):
            return self.each.ok(value)
        if self.each is not None:
            return isinstance(value, (tuple, list)) and len(value) > 0 and all(self.each.ok(v) for v in value)
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return not (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def count(lo: int = 1, optional: bool = False) -> Rule:
    return Rule("int", lo=lo, optional=optional)


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
         optional: bool = False) -> Rule:
    return Rule("float", lo, hi, lo_open, hi_open, optional=optional)


def one_of(*choices: str) -> Rule:
    return Rule("choice", choices=choices)


def each(rule: Rule) -> Rule:
    return Rule("tuple", each=rule)


UNIT = real(0.0, 1.0)  # a fraction or probability in [0, 1]
POSITIVE = real(0.0, lo_open=True)
NONNEGATIVE = real(0.0)

# (patterns, rule): the first pattern matching a dotted key decides (paper / reference meaning in comments).
RULES: tuple[tuple[tuple[str, ...], Rule], ...] = (
    # The shared training loop (train.py), wherever a TrainConfig appears (stages too).
    (("*train.steps", "*warmup_steps"), count(0)),  # steps 0: never trained (the random floor)
    (("*batch_size", "*log_every", "*ckpt_every"), count(1)),
    (("*train.lr", "*train.eps"), POSITIVE),
    (("*train.weight_decay", "*train.grad_clip"), NONNEGATIVE),  # grad_clip 0: no clipping
    (("*ema_decay",), real(0.0, 1.0, hi_open=True)),  # 0: no EMA; 1 would never move
    (("*train.betas",), each(real(0.0, 1.0, hi_open=True))),  # Adam's beta1, beta2
    (("*train.lr_schedule",), one_of("constant", "cosine")),
    # Dataset options (datasets.md).
    (("data.resolution",), count(1)),
    (("data.size",), count(1, optional=True)),
    (("data.crop",), one_of("d2c", "center")),
    (("data.split",), one_of("train", "all")),
    (("model.code_prior",), one_of("latent", "gaussian", "two-phase")),  # two-phase: InfoDiffusion only
    (("data.variant",), one_of("toy", "realistic", "real")),
    # Metric settings (metrics.md).
    (("eval.dci.mode",), one_of("exact", "fast")),
    (("eval.tad.variant",), one_of("exact", "nashae", "disdiff")),
    (("eval.pmg.grid",), one_of("default", "full")),
    (("eval.pmg.noise",), one_of("gaussian", "uniform")),
    (("eval.tad.protocol",), one_of("benchbench", "infodiffusion", "disdiff")),
    (("eval.fid.protocol",), one_of("benchbench", "infodiffusion", "diffae", "disdiff-quirk")),
    (("eval.pmg.protocol",), one_of("benchbench", "pdae")),
    (("eval.fid.num_gen",), count(0)),  # 0: the protocol's count
    (("eval.fid.num_real",), Rule("int", lo=-1)),  # 0: the whole training split; -1: the protocol's count
    (("eval.*num_bins",), count(2)),  # one bin makes every code constant
    (("eval.*num_*", "eval.encode_batch", "eval.postprocess_fit"), count(1)),
    (("eval.seed", "eval.*random_state"), Rule("int", lo=0, hi=2**32 - 1)),  # np.random.RandomState's range
    (("eval.*threshold",), UNIT),
    # Model configs: sizes and dimensions.
    (("model.*latent_dim", "model.*z_dim", "model.*a_dim", "model.*factor_dim", "model.*num_factors",
      "model.*orth_dim", "model.*num_steps", "model.*sample_steps", "model.*resolution", "model.*base_channels",
      "model.*num_heads", "model.*num_groups", "model.*codebook_size", "model.*in_channels", "model.*out_channels",
      "model.*out_dim", "model.*z_channels", "model.*autoencoder.channels", "model.*encoder_heads"), count(1)),
    (("model.*num_res_blocks", "model.*cond_dim", "model.*_seed"), count(0)),
    (("model.*time_embed_dim",), count(1, optional=True)),
    (("model.*channel_mult",), each(count(1))),
    (("model.*encoder_channels",), Rule("tuple", each=count(1), scalar=True)),
    (("model.*attention_resolutions", "model.*encoder_attention"), Rule("tuple", each=count(1), optional=True)),
    (("model.*dropout",), real(0.0, 1.0, hi_open=True)),
    (("model.*beta_start", "model.*beta_end"), real(0.0, 1.0, lo_open=True, hi_open=True)),  # DDPM variances
    (("model.*momentum",), UNIT),
    (("model.beta", "model.gamma", "model.*weight", "model.commitment", "model.*commitment"),
     real(0.0, optional=True)),  # loss weights (x0_weight None: 1/T)
)


def _allow_empty_tuple(rule: Rule, value: Any) -> bool:
    return rule.optional and isinstance(value, (tuple, list)) and len(value) == 0


def leaves(cfg: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every non-dataclass field below ``cfg``."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            yield from leaves(value, key + ".")
        else:
            yield key, value


def rule_for(key: str) -> Rule | None:
    for patterns, rule in RULES:
        if any(fnmatchcase(key, p) for p in patterns):
            return rule
    return None


def _floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _floats(v)


def problem(key: str, value: Any) -> str:
    """Why ``value`` is not allowed at ``key``, or ""."""
    rule = rule_for(key)
    if rule is not None and not rule.ok(value) and not _allow_empty_tuple(rule, value):
        return f"{key}={value!r} is not allowed: {key} must be {rule.allowed()}"
    if any(not math.isfinite(v) for v in _floats(value)):
        return f"{key}={value!r} is not allowed: {key} must be finite"
    return ""


def check_config(cfg: Any) -> None:
    """Raise a one-line ConfigError for the first value of ``cfg`` (a RunConfig) the table rejects."""
    for key, value in leaves(cfg):
        if key in ("method", "dataset", "preset", "seed"):
            continue
        why = problem(key, value)
        if why:
            raise ConfigError(f"{why} (set it with --set {key}=...)")


def check_eval(cfg: Any) -> None:
    """The table's rules for an EvalConfig on its own (``benchbench score``: keys without the ``eval.`` prefix)."""
    for key, value in leaves(cfg):
        why = problem(f"eval.{key}", value).replace("eval.", "")
        if why:
            raise ConfigError(f"{why} (set it with --set {key}=...)")


def check_buildable(cfg: Any, spec: Any, build: Callable[[], Any] | None = None) -> None:
    """Build the method's model for ``spec`` on the meta device; a ValueError, AssertionError or shape error means
    the network cannot take this config (e.g. a resolution its strides do not divide): a one-line ConfigError.

    A method that needs stage artifacts cannot be built before they exist: its stages that depend on no other stage
    (a pre-trained DPM, an autoencoder) are built instead; the rest is left to the table and the method's ``check``.
    A failure on the meta device is confirmed on the CPU before it is reported, so an operation the meta device
    lacks never blocks a valid config.
    """
    import torch

    from benchbench.registry import methods

    entry = methods.get(cfg.method)
    requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
    if build is None and requests:  # the method needs trained stages; build those that need nothing themselves
        from benchbench.stages import build_model

        todo = list(requests.values())
        while todo:
            req = todo.pop()
            todo += [dep for _, dep in req.deps]
            if not req.deps:
                check_buildable(cfg, spec, lambda req=req: build_model(req, spec, {}))
        return
    make = build or (lambda: entry.obj(cfg.model, spec))
    try:
        with torch.device("meta"):
            make()
        return
    except ConfigError:
        raise
    except Exception:
        pass
    try:
        make()
    except ConfigError:
        raise
    except (ValueError, AssertionError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{cfg.method} cannot be built for data.resolution={spec.resolution} with this model "
                          f"config: {text}; choose a resolution or model size the network takes") from None
