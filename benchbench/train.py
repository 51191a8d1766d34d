"""The one shared training loop: device, bf16 autocast, EMA, clipping, atomic checkpoints, resume,
deterministic seeding, non-finite loss detection, progress bar, ``stats.jsonl``, TensorBoard, and a
checkpoint on Ctrl-C.

Determinism and exact resume come from seeding per step rather than per run: step ``s`` of seed
``k`` draws its batch indices from ``np.random.default_rng([k, s, rank])`` and its model noise from
``torch.manual_seed(derive_seed(k, s, rank))``. A run resumed from the checkpoint written after step
``s`` therefore sees exactly the numbers an uninterrupted run sees from step ``s + 1`` on.

Records that cannot lie: every checkpoint's SHA-256 is recorded in ``ckpt.pt.sha256`` before the checkpoint is
renamed into place (:mod:`benchbench.integrity`); a checkpoint that fails it is discarded with a one-line warning
and the seed restarts from step 0 (which, by the seeding above, gives the same numbers). On every start,
``stats.jsonl`` is cut back to the step training resumes from (0 without a checkpoint), dropping a torn last line,
so the log holds each step once. A checkpoint is written only when the disk has room for it twice over (the
temporary copy beside the one it replaces).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbench import distributed, integrity
from benchbench import progress as prog
from benchbench.config import TrainConfig
from benchbench.datasets.base import ImageData, to_model_input
from benchbench.errors import BenchbenchError, TrainingError
from benchbench.method import Method
from benchbench.store import atomic_write_bytes

CKPT = "ckpt.pt"
STATS = "stats.jsonl"


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchbenchError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise BenchbenchError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed (torchrun sets these up)."""
    return distributed.world()


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and platforms)."""
    digest = hashlib.sha256(np.asarray(parts, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batch_indices(seed: int, step: int, rank: int, n: int, batch_size: int) -> np.ndarray:
    """The dataset indices [batch_size] used at ``step`` (uniform with replacement)."""
    return np.random.default_rng([seed, step, rank]).integers(0, n, size=batch_size)


def training_batch(data: ImageData, pool: np.ndarray | None, seed: int, step: int, rank: int,
                   batch_size: int, world_size: int = 1) -> torch.Tensor:
    """This rank's part [B / W, C, H, W] in [-1, 1] of ``step``'s global batch of B images: drawn from ``pool``
    (``data.training_pool()``, or every image when None) and, for datasets trained with flips, mirrored per image with
    probability 1/2. The global batch does not depend on the world size W; rank r takes rows r·B/W .. (r+1)·B/W."""
    idx = batch_indices(seed, step, 0, len(data) if pool is None else len(pool), batch_size)
    flip = np.random.default_rng([seed, step, 0, 1]).random(batch_size) < 0.5
    part = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
    idx, flip = idx[part], flip[part]
    images = data.images(idx if pool is None else pool[idx])
    if data.flips_training_batches():
        images = images.copy()
        images[flip] = images[flip, :, ::-1]
    return to_model_input(images)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, over parameters; buffers are copied.

    Parameters whose names start with one of the model's ``ema_exclude`` prefixes (a method attribute, e.g.
    DisDiff's ``("encoder.",)``: its encoder is not EMA-averaged) are copied too, so evaluation uses them as trained.
    """
    exclude = tuple(getattr(model, "ema_exclude", ()))
    for (name, e), p in zip(ema.named_parameters(), model.parameters()):
        if exclude and name.startswith(exclude):
            e.copy_(p.detach())
        else:
            e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


DISK_MARGIN = 16 * 2**20  # bytes left free after a checkpoint write


def check_free_space(folder: Path, need: int, what: str) -> None:
    """Raise a one-line TrainingError unless ``folder``'s disk has ``need`` bytes (plus a margin) free."""
    free = shutil.disk_usage(folder).free
    if free < need + DISK_MARGIN:
        raise TrainingError(f"not enough free disk in {folder} for {what}: needs {need / 2**20:.1f} MiB, "
                            f"{free / 2**20:.1f} MiB free; free space or choose another --out")


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint atomically with its digest recorded first; the disk must hold it twice over
    (its temporary copy coexists with the checkpoint it replaces), less the space the old one frees."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    old = path.stat().st_size if path.exists() else 0
    check_free_space(path.parent, max(len(data), 2 * len(data) - old), f"a {len(data) / 2**20:.1f} MiB checkpoint")
    integrity.write_checked(path, data)


def _verified(path: Path, log: Any) -> bool:
    """Whether ``path`` holds a checkpoint to resume from. One that fails its checksum or cannot be read is
    removed after a one-line warning (the seed then restarts from step 0); one written before checksums existed
    is adopted (its digest recorded)."""
    if not path.exists():
        return False
    verdict = integrity.check(path)
    if verdict == "unrecorded":
        try:
            torch.load(path, map_location="cpu", weights_only=False)["step"]
        except Exception as exc:
            verdict = f"cannot be read ({type(exc).__name__})"
        else:
            integrity.record(path, integrity.sha256_file(path), keep_current=False)
            return True
    if verdict == "ok":
        return True
    why = "fails its SHA-256 check" if verdict == "corrupt" else verdict
    log(f"warning: {path} {why}; discarding it and restarting this seed from step 0")
    integrity.discard(path)
    return False


def _load_checkpoint(path: Path, cfg_hash: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise TrainingError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); delete it to restart this seed"
        ) from None
    if state.get("config_hash") != cfg_hash:
        raise TrainingError(f"checkpoint {path} belongs to another config; delete it to restart this seed")
    return state


def _trim_stats(path: Path, last_step: int) -> None:
    """Drop stats lines after the step we resume from (they will be written again) and any torn line."""
    if not path.exists():
        return
    keep = []
    for ln in path.read_bytes().decode(errors="replace").splitlines():
        try:
            row = json.loads(ln)
        except ValueError:
            continue  # a line torn by a kill
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= last_step:
            keep.append(ln)
    text = ("\n".join(keep) + "\n" if keep else "").encode()
    if text != path.read_bytes():
        atomic_write_bytes(path, text)


def logged_steps(path: Path) -> list[int]:
    """The steps of ``stats.jsonl`` in file order (torn lines skipped); for checks and tests."""
    if not path.exists():
        return []
    rows = [read_json_line(ln) for ln in path.read_text(errors="replace").splitlines()]
    return [r["step"] for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)]


def read_json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _extra_gradients(loss: torch.Tensor, params: list[torch.nn.Parameter], extra_losses: list[torch.Tensor],
                     extra_params: list[list[torch.nn.Parameter]]) -> None:
    """Set ``.grad`` of each parameter group to the gradient of its own loss only, all from one forward pass.

    The main ``loss`` may depend on the extra parameters (FactorVAE's TC term runs through the discriminator) and an
    extra loss on the main ones; neither leaks into the other's group, unlike a plain ``backward`` of each."""
    groups = [(loss, params), *zip(extra_losses, extra_params)]
    for i, (value, group) in enumerate(groups):
        grads = torch.autograd.grad(value, group, retain_graph=i < len(groups) - 1, allow_unused=True)
        for p, g in zip(group, grads):
            p.grad = g


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is the optional `tb` extra
        return None
    return SummaryWriter(str(run_dir / "tb"))


class _Interrupt:
    """Ctrl-C (SIGINT) during training: the first one lets the current step finish, then the loop writes a
    checkpoint and raises KeyboardInterrupt; a second one interrupts at once. Installed in the main thread of
    one-process runs only (torchrun ranks keep the default behaviour: stopping them one by one could hang a
    collective)."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Interrupt:
        if self.active:
            try:
                self._old = signal.signal(signal.SIGINT, self._handle)
            except ValueError:  # not the main thread
                self.active = False
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self._old)


def train(
    method: Method,
    data: ImageData,
    cfg: TrainConfig,
    run_dir: Path,
    seed: int,
    cfg_hash: str,
    device: torch.device,
    progress: bool = True,
    log: Any = print,
    desc: str | None = None,
) -> Method:
    """Train ``method`` on ``data`` for ``cfg.steps`` steps, resuming from ``run_dir/ckpt.pt``.

    Progress: one bar (or throttled plain lines through ``log``; :mod:`benchbench.progress`) named ``desc``
    (default ``training <run folder>``). Ctrl-C writes a checkpoint of the last finished step, then raises
    KeyboardInterrupt; running again resumes from it.

    Returns:
        The model to evaluate (the EMA copy when ``cfg.ema_decay > 0``), in eval mode.

    Raises:
        TrainingError: a non-finite loss (naming the step) or an unreadable checkpoint.
    """
    # Setup.
    rank, world_size = distributed_rank()
    if cfg.batch_size % world_size:
        raise TrainingError(f"train.batch_size={cfg.batch_size} is not divisible by the {world_size} ranks; "
                            f"set --set train.batch_size to a multiple of {world_size}")
    method.to(device)
    params = method.trainable_parameters()
    opt_cls = torch.optim.AdamW if cfg.weight_decay > 0 else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay) if params else None
    extras = [(e, e.make_optimizer(e.params)) for e in method.extra_objectives()]  # e.g. FactorVAE's discriminator
    ema = copy.deepcopy(method).requires_grad_(False) if cfg.ema_decay > 0 else None
    use_amp = cfg.amp and device.type == "cuda"
    ckpt_path, stats_path = run_dir / CKPT, run_dir / STATS

    # Resume.
    start = 0
    if distributed.from_main(_verified(ckpt_path, log) if rank == 0 else False):
        state = _load_checkpoint(ckpt_path, cfg_hash)
        method.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if opt is not None and state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
        for e, e_opt in extras:
            e_opt.load_state_dict(state["extra_optimizers"][e.name])
        start = int(state["step"])
        log(f"resuming {run_dir.name} from step {start}/{cfg.steps}")
    if rank == 0:
        _trim_stats(stats_path, start)

    def checkpoint(step: int) -> None:
        if rank != 0:
            return
        _save_checkpoint(ckpt_path, {
            "step": step, "config_hash": cfg_hash, "model": method.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": opt.state_dict() if opt is not None else None,
            "extra_optimizers": {e.name: e_opt.state_dict() for e, e_opt in extras},
        })

    # Loop.
    writer = _tensorboard(run_dir) if rank == 0 and cfg.steps > start else None
    bar = prog.bar(cfg.steps, desc or f"training {run_dir.name}", progress, log if rank == 0 else None,
                   unit="step", initial=start)
    method.train()
    pool = data.training_pool()
    t0 = time.perf_counter()
    stop = _Interrupt(active=world_size == 1).__enter__()
    last_ckpt = start
    try:
        for step in range(start, cfg.steps):
            torch.manual_seed(derive_seed(seed, step, rank))
            x = training_batch(data, pool, seed, step, rank, cfg.batch_size, world_size).to(device, non_blocking=True)
            lr = cfg.learning_rate(step)
            for group in opt.param_groups:
                group["lr"] = lr
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
            with autocast:
                terms = method.loss(x)
            loss = terms["loss"]
            extra_losses = [terms[e.loss_key] for e, _ in extras]
            if world_size > 1:  # every rank sees the mean, so all stop together on a non-finite loss
                terms = distributed.mean_over_ranks(terms)
            if not torch.isfinite(terms["loss"]).item():
                kept = ("the last checkpoint is kept" if ckpt_path.exists()
                        else "no checkpoint was written yet, so a rerun starts from step 0")
                raise TrainingError(
                    f"non-finite loss ({terms['loss'].item()}) at step {step + 1}; lower train.lr or set "
                    f"train.grad_clip ({kept})"
                )
            opt.zero_grad(set_to_none=True)
            if not extras:
                loss.backward()
            else:
                _extra_gradients(loss, params, extra_losses, [e.params for e, _ in extras])
            distributed.average_gradients(params)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            for e, e_opt in extras:
                distributed.average_gradients(e.params)
                e_opt.step()
            if ema is not None:
                ema_update(ema, method, cfg.ema_decay)
            done = step + 1
            # Logging.
            if done % cfg.log_every == 0 or done == cfg.steps:
                row = {"step": done, "lr": lr, "time": round(time.perf_counter() - t0, 3)}
                row.update({k: float(v.detach()) for k, v in terms.items()})
                if rank == 0:
                    with stats_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    if writer is not None:
                        for k, v in row.items():
                            if k != "step":
                                writer.add_scalar(f"train/{k}", v, done)
                bar.set_postfix(loss=f"{row['loss']:.4g}")
            bar.update(1)
            if done % cfg.ckpt_every == 0 or done == cfg.steps:
                checkpoint(done)
                last_ckpt = done
            if stop.requested:
                if last_ckpt != done:
                    checkpoint(done)
                bar.close()
                log(f"Ctrl-C: checkpoint written at step {done}/{cfg.steps} ({run_dir / CKPT})")
                raise KeyboardInterrupt
    finally:
        stop.__exit__()
        bar.close()
        if writer is not None:
            writer.close()
    if cfg.steps == 0 and not ckpt_path.exists():
        checkpoint(0)
    model = ema if ema is not None else method
    return model.eval()

