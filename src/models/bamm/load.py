"""Strict loading of BAMM transformer checkpoints (``latest.tar`` / ``net_best_fid.tar``) and manifest checks.

Upstream bug this loader fixes (Mamiglia/BAMM @ eb1d718, ``models/loaders.py::load_trans_model``, lines 56-68):
the loader pops ``output_process.poseFinal.weight``, ``output_process.poseFinal.bias`` and ``token_emb.weight`` from
the checkpoint's state_dict (lines 56-58), loads the rest with ``strict=False`` (line 60), then removes exactly those
three names from the missing-key list (lines 65-66) so that its ``all(k.startswith('clip_model.'))`` assertion
(line 68) passes. The trained output head (``(num_tokens + 1) x latent`` weight and bias) and the token embedding
(``(num_tokens + 3) x code_dim``) therefore keep their random init (N(0, 0.02), zero bias) with no error and no
warning. The same file also falls back to ``base.tar`` when the asked checkpoint is missing (lines 46-49). The
gen/eval scripts (``gen_t2m.py``, ``eval_t2m_trans_res.py``) load with ``strict=False`` too and rely on an assertion
that only inspects missing keys.

Here every key in the file must match the model (names and shapes) and vice versa; the only keys skipped are
``clip_model.*`` (frozen CLIP weights, not part of BAMM; upstream strips them before saving anyway). Nothing falls
back to another file.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from src.common.errors import HmuError
from src.common.io import torch_load
from src.config import VQConfig
from src.models.strict import load_state_dict_strict, state_dict_mismatch

from .config import BAMMConfig, BAMMTransConfig
from .model import BAMMTransformer

log = logging.getLogger(__name__)

def checkpoint_state(ckpt: Mapping[str, Any], *, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The transformer state_dict inside a BAMM checkpoint dict (``t2m_transformer``, or older files' ``trans``, as
    MoMask's masked transformer), with ``clip_model.*`` keys removed."""
    from src.models.checkpoint import checkpoint_entry

    return checkpoint_entry(ckpt, "mask", source=source)


def load_bamm(path: str | os.PathLike, config: BAMMConfig) -> BAMMTransformer:
    """Build ``BAMMTransformer(config)`` and load ``path`` strictly; eval mode, CPU.

    Any missing, unexpected or reshaped key is a one-line HmuError naming the file and the first offending keys.
    """
    model = BAMMTransformer(config)
    ckpt = torch_load(path, what="BAMM checkpoint")
    load_state_dict_strict(model, checkpoint_state(ckpt, source=path), source=path)
    log.info("loaded BAMM transformer from %s (epoch %s)", path, ckpt.get("ep"))
    return model.eval()


def load_bamm_run(run_dir: str | os.PathLike, *, vq: VQConfig | None = None, code_dim: int | None = None,
                  num_tokens: int | None = None, which: str = "latest.tar") -> tuple[BAMMTransformer, BAMMTransConfig]:
    """Load ``<run_dir>/model/<which>`` using ``<run_dir>/opt.txt``; VQ sizes come from ``vq`` (or are given).

    ``run_dir`` is the checkpoint folder itself; the ``checkpoints_dir`` written in opt.txt is not used.
    """
    run_dir = Path(run_dir)
    opt = BAMMTransConfig.load(run_dir / "opt.txt")
    cfg = opt.model_config(vq, code_dim=code_dim, num_tokens=num_tokens)
    from src.models.checkpoint import checkpoint_file  # base.tar -> latest.tar, as upstream's prepare.sh links it

    return load_bamm(checkpoint_file(run_dir, which, "bamm"), cfg), opt


def manifest_mismatch(manifest: Mapping[str, Any]) -> str | None:
    """Build the manifest's released config on the meta device and compare state_dict keys, shapes and dtypes."""
    c = manifest["config"]
    cfg = BAMMConfig(code_dim=c["code_dim"], num_tokens=c["num_tokens"], latent_dim=c["latent_dim"],
                     ff_size=c["ff_size"], num_layers=c["n_layers"], num_heads=c["n_heads"], dropout=c["dropout"],
                     clip_dim=c["clip_dim"], cond_drop_prob=c["cond_drop_prob"], trans=c["trans"])
    problems = []
    for name, want in (("end_id", "end_id"), ("pad_id", "pad_id"), ("mask_id", "mask_id")):
        if getattr(cfg, name) != c[want]:
            problems.append(f"{name} {getattr(cfg, name)} vs {c[want]}")
    with torch.device("meta"):
        model = BAMMTransformer(cfg)
    sd = model.state_dict()
    expected = manifest["state_dict"]
    p = state_dict_mismatch({k: v[0] for k, v in expected.items()}, sd)
    if p:
        problems.append(p)
    dtypes = [k for k, v in expected.items() if k in sd and str(sd[k].dtype).replace("torch.", "") != v[1]]
    if dtypes:
        problems.append(f"dtype mismatches ({', '.join(dtypes[:3])})")
    n_params = sum(p.numel() for p in model.parameters())
    if "n_params_wo_clip" in manifest and n_params != manifest["n_params_wo_clip"]:
        problems.append(f"{n_params} parameters vs {manifest['n_params_wo_clip']}")
    return "; ".join(problems) or None


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HmuError(f"cannot read manifest {path}: {exc}") from None
