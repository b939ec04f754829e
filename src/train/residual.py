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


def build_parser():
    from src.train.mask import build_parser as mask_parser

    return mask_parser(residual=True)


def build_checked(cfg, vq_cfg):
    """The untrained residual transformer; HmuError when the VQ has a single code layer (nothing to predict)."""
    from src.common.errors import HmuError
    from src.models.momask import build_res_transformer

    if vq_cfg.num_quantizers < 2:
        raise HmuError(f"VQ run '{cfg.vq_name}' has {vq_cfg.num_quantizers} quantizer: nothing for a residual "
                       f"transformer to predict (train the VQ with --num_quantizers >= 2)")
    return build_res_transformer(cfg, vq_cfg)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.mask import command, describe
    from src.train.options import parse_command

    cmd = parse_command(command(residual=True), argv, prog="python -m src.train.residual", doc=describe(True))

    from src.config import ResTransConfig
    from src.train.fid import transformer_hook_factory
    from src.train import options
    from src.train.engine import TrainSpec
    from src.train.transformer import finish_selection, train_new_transformer

    cfg, run = options.from_command(cmd, ResTransConfig, "res", need_vq_name=True)
    spec = TrainSpec(model_key="res_transformer", opt_key="opt_res_transformer", best_file="net_best_loss.tar")
    t, result = train_new_transformer(cfg, run, build_model=build_checked, layers="all", spec=spec, score_key="loss",
                                      fid_hook=transformer_hook_factory(run))
    print(finish_selection(t, result, "residual transformer", best_file="net_best_loss.tar", criterion="val_loss",
                           best_val_loss=result["best"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
