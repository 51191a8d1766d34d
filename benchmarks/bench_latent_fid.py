"""FID of each diffusion method with its latent code generator vs the Gaussian code prior, on one trained run.

For every method: ``benchbench run`` (preset, dataset, ``--metrics fid``) with ``model.code_prior=latent`` trains the
model, builds the ``latent`` stage on its training codes and scores FID from the latent generator; the same trained
model (its checkpoint, resumed with zero steps left) is then scored again with ``code_prior=gaussian``. Prints one
line per method with both FIDs, the latent stage's build time and the process's CPU seconds.

    python benchmarks/bench_latent_fid.py --methods diffae,pdae --dataset celeba-synth --preset quick \
        --num-gen 200 --num-real 200 --weights weights-inception-2015-12-05-6726825d.pth --out /tmp/latent-fid
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="diffae,pdae,disdiff,infodiffusion")
    p.add_argument("--dataset", default="celeba-synth")
    p.add_argument("--preset", default="quick")
    p.add_argument("--protocol", default="benchbench")
    p.add_argument("--num-gen", type=int, default=200)
    p.add_argument("--num-real", type=int, default=200)
    p.add_argument("--weights", default="", help="torch-fidelity Inception weights (eval.fid.weights)")
    p.add_argument("--cleanfid-weights", default="", help="clean-fid TorchScript Inception (eval.fid.cleanfid_weights)")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-latent-fid"))
    p.add_argument("--set", action="append", default=[], help="extra KEY=VALUE overrides")
    args = p.parse_args()
    torch.set_num_threads(1)

    from benchbench import runner
    from benchbench.evaluate import evaluate
    from benchbench.registry import methods
    from benchbench.stages import ensure
    from benchbench.train import train

    device = torch.device("cpu")
    for method in args.methods.split(","):
        overrides = ["eval.metrics=('fid',)", f"eval.fid.protocol={args.protocol}", f"eval.fid.num_gen={args.num_gen}",
                     f"eval.fid.num_real={args.num_real}", "model.code_prior=latent", *args.set]
        if args.weights:
            overrides.append(f"eval.fid.weights={args.weights}")
        if args.cleanfid_weights:
            overrides.append(f"eval.fid.cleanfid_weights={args.cleanfid_weights}")
        c0, t0 = time.process_time(), time.perf_counter()
        logs: list[str] = []
        runner.run(method, args.dataset, 1, args.preset, overrides, args.out, device="cpu", progress=False,
                   log=logs.append)
        spec = runner.plan(method, args.dataset, args.preset, [0], overrides, args.out).specs[0]
        cfg, run_dir = spec.cfg, spec.dir  # the run's folder is keyed by its config and code (runner.plan)
        record = json.loads((run_dir / "result.json").read_text())
        latent_fid = record["metrics"]["fid"]["value"]
        stage = json.loads((Path(record["stages"]["latent"]["path"]).parent / "artifact.json").read_text())
        c1 = time.process_time()
        # The same trained model, scored with the Gaussian code prior.
        data = runner.build_data(cfg, None)
        entry = methods.get(method)
        requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
        arts = {n: ensure(r, lambda _, d=data: d, device, args.out, logs.append, False) for n, r in requests.items()}
        model = entry.obj(cfg.model, data.spec, stages=arts) if requests else entry.obj(cfg.model, data.spec)
        trained = train(model, data, cfg.train, run_dir, cfg.seed, spec.cfg_hash, device, False, logs.append)
        trained.cfg = replace(trained.cfg, code_prior="gaussian")
        gauss = evaluate(trained, data, cfg.eval, ["fid"], device, logs.append, out_dir=args.out / f"gauss-{method}")
        c2 = time.process_time()
        print(json.dumps({
            "method": method, "dataset": args.dataset, "preset": args.preset, "protocol": args.protocol,
            "num_gen": args.num_gen, "num_real": args.num_real, "fid_latent": round(latent_fid, 3),
            "fid_gaussian": round(gauss["fid"]["value"], 3), "generator": record["generator"],
            "latent_stage_wall_s": stage["seconds"], "run_cpu_s": round(c1 - c0, 1),
            "gaussian_fid_cpu_s": round(c2 - c1, 1), "wall_s": round(time.perf_counter() - t0, 1),
            "fid_tool": record["metrics"]["fid"]["extras"].get("tool")}), flush=True)


if __name__ == "__main__":
    main()
