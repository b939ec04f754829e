"""Helpers for the MoMask tests: locate fixture files and build models from them (every size read from files)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

KIND_OF_CLASS = {"RVQVAE": "vq", "MaskTransformer": "mask", "ResidualTransformer": "res", "LengthEstimator": "len"}


def momask_root(fixtures: Path) -> Path:
    root = fixtures / "momask"
    if not root.is_dir():
        pytest.skip(f"no momask fixtures under {fixtures}")
    return root


def model_from_manifest_config(cls_name: str, cfg: dict):
    """Instantiate our class from a manifest/configs.json ``config`` (upstream argument names)."""
    from src.models.momask import RVQVAE, LengthEstimator, MaskTransformer, ResidualTransformer

    if cls_name == "RVQVAE":
        return RVQVAE(input_width=cfg["input_width"], nb_code=cfg["nb_code"], code_dim=cfg["code_dim"],
                      output_emb_width=cfg["output_emb_width"], down_t=cfg["down_t"], stride_t=cfg["stride_t"],
                      width=cfg["width"], depth=cfg["depth"], dilation_growth_rate=cfg["dilation_growth_rate"],
                      activation=cfg["vq_act"], norm=cfg["vq_norm"], num_quantizers=cfg["num_quantizers"],
                      shared_codebook=cfg["shared_codebook"], quantize_dropout_prob=cfg["quantize_dropout_prob"],
                      mu=cfg["mu"])
    if cls_name == "MaskTransformer":
        return MaskTransformer(code_dim=cfg["code_dim"], num_tokens=cfg["num_tokens"], latent_dim=cfg["latent_dim"],
                               ff_size=cfg["ff_size"], num_layers=cfg["n_layers"], num_heads=cfg["n_heads"],
                               dropout=cfg["dropout"], clip_dim=cfg["clip_dim"], cond_drop_prob=cfg["cond_drop_prob"])
    if cls_name == "ResidualTransformer":
        return ResidualTransformer(code_dim=cfg["code_dim"], num_tokens=cfg["num_tokens"],
                                   num_quantizers=cfg["num_quantizers"], latent_dim=cfg["latent_dim"],
                                   ff_size=cfg["ff_size"], num_layers=cfg["n_layers"], num_heads=cfg["n_heads"],
                                   dropout=cfg["dropout"], clip_dim=cfg["clip_dim"],
                                   cond_drop_prob=cfg["cond_drop_prob"], share_weight=cfg["share_weight"],
                                   shared_codebook=cfg["shared_codebook"])
    if cls_name == "LengthEstimator":
        return LengthEstimator(input_size=cfg["input_size"], output_size=cfg["output_size"],
                               hidden=cfg.get("hidden_nd_hardcoded", 512))
    raise KeyError(cls_name)


def load_manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def tiny_configs(root: Path) -> dict:
    return json.loads((root / "tiny" / "configs.json").read_text())


def tiny_runs(root: Path) -> dict[str, Path]:
    """kind -> run folder under tiny/checkpoints/<dataset>/, identified by the key inside its checkpoint files."""
    import torch

    from src.models.checkpoint import KINDS, read_checkpoint  # noqa: F401

    out: dict[str, Path] = {}
    for tar in sorted((root / "tiny" / "checkpoints").glob("*/*/model/*.tar")):
        keys = torch.load(tar, map_location="cpu", weights_only=True).keys()
        for kind, k in KINDS.items():
            if any(name in keys for name in k.keys):
                out.setdefault(kind, tar.parent.parent)
    return out
