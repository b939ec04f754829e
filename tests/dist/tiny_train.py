"""A tiny deterministic model trained by the engine (src/train/engine.py), for the torchrun tests.

    [torchrun --nproc_per_node N] tests/dist/tiny_train.py RUN_DIR [--max_epoch E] [--kill_at IT] [--batch_size B]

No dropout or sampling, and a per-item mean loss, so N processes with the global batch B train the same weights as one.
``--kill_at IT``: every rank SIGKILLs itself when it reaches global iteration IT (mid-epoch), as a crash would.
Rank 0 prints one JSON line: wall time, iterations, world size.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--max_epoch", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--kill_at", type=int, default=None)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (under torchrun: GPU LOCAL_RANK, nccl)")
    args = p.parse_args()

    import torch

    from src.common import dist
    from src.common.seed import fix_seed
    from src.train.engine import TrainSpec, make_optimizer, train
    from src.train.feed import epoch_order
    from src.train.options import init_distributed

    torch.set_num_threads(1)
    device = init_distributed(torch.device(args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 6, generator=g).to(device)
    y = torch.sin(x.sum(1, keepdim=True))
    fix_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).to(device)

    class Cfg:
        lr, warm_up_iter, milestones, gamma = 1e-2, 2, [6], 0.5

    optimizer, scheduler = make_optimizer(model, Cfg)

    def batches(epoch):
        for idx in epoch_order(args.n, batch_size=args.batch_size, seed=0, epoch=epoch):
            yield torch.as_tensor(idx, device=device)

    def step(idx, it):
        if args.kill_at is not None and it == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        return {"loss": loss}

    def validate():
        return {"loss": torch.nn.functional.mse_loss(model(x), y)}

    t0 = time.time()
    spec = TrainSpec(model_key="net", opt_key="opt_net", best_file="best.tar")
    result = train(model=model, optimizer=optimizer, scheduler=scheduler, spec=spec, run_dir=args.run_dir,
                   batches=batches, step=step, validate=validate, score_key="loss", max_epoch=args.max_epoch, seed=0,
                   progress=False, log_every=1)
    if dist.is_main():
        print(json.dumps({"wall_s": time.time() - t0, "total_it": result["total_it"],
                          "world_size": dist.world_size()}), file=sys.__stdout__, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
