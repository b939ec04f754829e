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


def build_parser(residual: bool = False):
    from src.config.momask import MaskTransConfig, ResTransConfig
    from src.train.options import add_transformer_args, base_parser

    what = "residual transformer (code layers 1..Q-1)" if residual else "masked transformer (code layer 0)"
    cls, kind = (ResTransConfig, "res") if residual else (MaskTransConfig, "mask")
    p = base_parser(f"Train MoMask's {what} (upstream flags; sizes from --preset unless given).", cls, kind)
    add_transformer_args(p, cls, kind, residual=residual)
    return p


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from src.config import MaskTransConfig
    from src.models.momask import build_mask_transformer
    from src.train import options
    from src.train.transformer import train_first_layer

    cfg, run = options.from_flags(vars(args), MaskTransConfig, "mask", need_vq_name=True)
    result = train_first_layer(cfg, run, build_model=build_mask_transformer, label="mask transformer")
    print(result["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
