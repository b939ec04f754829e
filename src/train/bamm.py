"""Train BAMM's bidirectional autoregressive masked transformer on a VQ's first code layer:
``python -m src.train.bamm --name bamm_tiny --vq_name rvq_tiny --dataset_name synth``.

The data, text features, optimiser, engine and file layout are the masked transformer's
(``src.train.transformer.train_first_layer``); only the model and its loss differ (``BAMMTransformer.forward``:
next-token targets ending in END, random known tokens, random-code corruption). Residual layers come from a MoMask residual transformer trained on
the same VQ, as upstream BAMM does. Files: ``latest.tar`` / ``net_best_acc.tar`` / ``net_best_fid.tar`` with the
``t2m_transformer`` entry, and an ``opt.txt`` with upstream's ``trans`` option plus ``model_family: bamm`` (hmu-only),
which is what :func:`src.gen.generate.load_generator` reads to pick the generator.
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli

FAMILY_KEY, FAMILY = "model_family", "bamm"


DESCRIPTION = "Train BAMM's transformer (code layer 0; upstream flags; sizes from --preset unless given)."


def command() -> type:
    from src.config.flags import opt
    from src.config.momask import MaskTransConfig
    from src.train.options import transformer_command

    # BAMMTransConfig adds to MaskTransConfig only fields that are no flags; importing it would import torch
    trans = opt(None, choices=("official",), help="BAMM transformer variant (upstream's --trans; only the released "
                                                   "'official')")
    return transformer_command(MaskTransConfig, "bamm", residual=False, extra=[("trans", str | None, trans)])


def build_parser():
    from src.train.options import command_parser

    return command_parser(command(), prog="python -m src.train.bamm", doc=DESCRIPTION)


def build_bamm(cfg, vq_cfg):
    """An untrained BAMMTransformer sized by its opt.txt config and the VQ's."""
    from src.models.bamm import BAMMTransformer

    return BAMMTransformer(cfg.model_config(vq_cfg))


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.options import parse_command

    cmd = parse_command(command(), argv, prog="python -m src.train.bamm", doc=DESCRIPTION)

    from src.models.bamm import BAMMTransConfig
    from src.train.fid import transformer_hook_factory
    from src.train import options
    from src.train.transformer import train_first_layer

    cfg, run = options.from_command(cmd, BAMMTransConfig, "bamm", need_vq_name=True)
    result = train_first_layer(cfg, run, build_model=build_bamm, label="BAMM transformer",
                               fid_hook=transformer_hook_factory(run),
                               opt_extra={FAMILY_KEY: FAMILY})
    print(result["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
