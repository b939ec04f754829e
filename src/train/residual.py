"""Train the residual transformer on a VQ's code layers 1..Q-1:
``python -m src.train.residual --name rtrans_tiny --vq_name rvq_tiny --dataset_name synth``.

As upstream (models/mask_transformer/transformer_trainer.py, ResidualTransformerTrainer): for each sample a layer
q in 1..Q-1 is drawn (biased to small q), the summed embeddings of layers 0..q-1 are the input, layer q's codes the
cross-entropy target; the condition is dropped with ``cond_drop_prob``. Normalisation uses the VQ run's meta
mean/std. The lowest validation loss is saved as ``net_best_loss.tar`` and also as ``net_best_fid.tar`` (the file
generation loads by default; ``hmu_meta.selected_by`` says ``val_loss``).
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli
from src.common.validate import parse_checked


def build_parser():
    from src.train.mask import build_parser as mask_parser

    return mask_parser(residual=True)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv)

    import torch

    from src.common.errors import HmuError
    from src.config import ResTransConfig
    from src.models.momask import build_res_transformer
    from src.train import common
    from src.train.engine import TrainSpec, train
    from src.train.mask import encode_codes, setup_transformer

    s = setup_transformer(args, ResTransConfig, "res")
    cfg, device, vq, text = s["cfg"], s["device"], s["vq"], s["text"]
    if s["vq_cfg"].num_quantizers < 2:
        raise HmuError(f"VQ run '{cfg.vq_name}' has {s['vq_cfg'].num_quantizers} quantizer: nothing for a residual "
                       f"transformer to predict (train the VQ with --num_quantizers >= 2)")
    model = build_res_transformer(cfg, s["vq_cfg"]).to(device)
    optimizer, scheduler = common.make_optimizer(model, cfg, weight_decay=1e-5)
    val_batches = common.fixed_batches(s["val_ds"], batch_size=cfg.batch_size, seed=cfg.seed)

    def step(batch, it: int):
        captions, _, motions, lengths = batch
        ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), cfg.unit_length)
        loss, _, acc = model(ids, text(captions), m_lens)
        return {"loss": loss, "acc": acc, "lr": scheduler.get_last_lr()[0]}

    def validate():
        g = torch.Generator(device=device).manual_seed(cfg.seed)
        losses, accs = [], []
        for captions, _, motions, lengths in val_batches:
            ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), cfg.unit_length)
            loss, _, acc = model(ids, text(captions), m_lens, generator=g)
            losses.append(float(loss))
            accs.append(acc)
        return {"loss": sum(losses) / len(losses), "acc": sum(accs) / len(accs)}

    tspec = TrainSpec(model_key="res_transformer", opt_key="opt_res_transformer", best_file="net_best_loss.tar")
    result = train(model=model, optimizer=optimizer, scheduler=scheduler, spec=tspec, run_dir=s["run"],
                   batches=common.t2m_batches(s["train_ds"], batch_size=cfg.batch_size, seed=cfg.seed), step=step,
                   validate=validate, score_key="loss", max_epoch=cfg.max_epoch, seed=cfg.seed,
                   meta=common.run_meta(cfg), resume=s["resume"], log_every=cfg.log_every,
                   progress=not args.no_progress)
    common.copy_best(s["run"], "net_best_loss.tar", "net_best_fid.tar", selected_by="val_loss")
    print(common.summary_line("residual transformer", s["run"], result, best_val_loss=result["best"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
