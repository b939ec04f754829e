"""Train the masked transformer on a VQ's first code layer:
``python -m src.train.mask --name mtrans_tiny --vq_name rvq_tiny --dataset_name synth``.

As upstream (models/mask_transformer/transformer_trainer.py): motions are normalised with the VQ run's
``meta/mean.npy``/``std.npy`` (not the dataset's, an upstream quirk kept on purpose), coded by the frozen VQ, then a
cosine-scheduled fraction of each sequence is corrupted BERT-style and predicted with cross-entropy; the text
condition is dropped with ``cond_drop_prob`` for classifier-free guidance. The best validation accuracy is saved as
``net_best_acc.tar`` and, because no evaluator runs during training, also as ``net_best_fid.tar`` (the file
generation loads by default; ``hmu_meta.selected_by`` says ``val_acc``).
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli


PROG = "python -m src.train.mask"


def command(residual: bool = False) -> type:
    """The trainer's command config (the residual trainer's with ``residual``)."""
    from src.config.momask import MaskTransConfig, ResTransConfig
    from src.train.options import transformer_command

    return transformer_command(ResTransConfig if residual else MaskTransConfig, "res" if residual else "mask",
                               residual=residual)


def describe(residual: bool = False) -> str:
    what = "residual transformer (code layers 1..Q-1)" if residual else "masked transformer (code layer 0)"
    return f"Train MoMask's {what} (upstream flags; sizes from --preset unless given)."


def build_parser(residual: bool = False):
    from src.train.options import command_parser

    return command_parser(command(residual), prog="python -m src.train." + ("residual" if residual else "mask"),
                          doc=describe(residual))


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.options import parse_command

    cmd = parse_command(command(), argv, prog=PROG, doc=describe())
    from src.config import MaskTransConfig
    from src.models.momask import build_mask_transformer
    from src.train.fid import transformer_hook_factory
    from src.train import options
    from src.train.transformer import train_first_layer

    cfg, run = options.from_command(cmd, MaskTransConfig, "mask", need_vq_name=True)
    result = train_first_layer(cfg, run, build_model=build_mask_transformer, label="mask transformer",
                               fid_hook=transformer_hook_factory(run))
    print(result["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
