"""Tiny MoMask runs with random weights, saved in upstream's layout, for the method CLI and collection tests."""
from __future__ import annotations

import shutil
from pathlib import Path

VQ, MASK, RES = "rvq_t", "mtrans_t", "rtrans_t"


def make_dataset(synth_root: Path, dest: Path, concept: str = "violence") -> Path:
    """Copy the session's synth dataset to ``dest/synth`` and write its keyword splits; returns the dataset dir."""
    from src.data.split import main as split_main

    data = dest / "synth"
    shutil.copytree(synth_root, data)
    assert split_main(["synth", concept, "--dataset_dir", str(dest)]) == 0
    return dest


def tiny_split_dataset(ds: Path, n: int = 24) -> Path:
    """Generate ``n`` synth motions into ``ds/synth`` and split them on violence; the test keyword splits are then
    rewritten as the even / odd test ids, so evaluation has both sets non-empty whatever the tiny dataset's keywords
    say. Returns ``ds/synth``."""
    from src.data.split import main as split_main
    from src.data.synth import generate_synth

    generate_synth(ds / "synth", n=n, seed=0, workers=1)
    assert split_main(["--dataset_dir", str(ds), "synth", "violence"]) == 0
    src = ds / "synth"
    test_ids = (src / "test.txt").read_text().split()
    (src / "kw_splits" / "test-w-violence.txt").write_text("\n".join(test_ids[::2]) + "\n")
    (src / "kw_splits" / "test-wo-violence.txt").write_text("\n".join(test_ids[1::2]) + "\n")
    return src


def tiny_vq_config(name: str = VQ):
    from src.config import VQConfig

    return VQConfig(name=name, dataset_name="synth", nb_code=32, code_dim=16, output_emb_width=16, width=32, depth=1,
                    num_quantizers=2, down_t=2, stride_t=2)


def generated_dataset_dir(tmp_path_factory, prefix: str, *, seed: int, n: int = 48) -> Path:
    """A new temp folder holding ``ds/synth``: a generated synth dataset of ``n`` motions from ``seed``."""
    from src.data.synth.generate import generate_synth

    base = tmp_path_factory.mktemp(prefix)
    generate_synth(base / "ds" / "synth", n=n, seed=seed, workers=1)
    return base


def seeded_tiny_vq():
    """The tiny VQ (:func:`tiny_vq_config`) in eval mode, built under seed 0 with its codebooks drawn from N(0, 1) by a
    generator seeded 0 (spread codes, so collection tests see distinct ids)."""
    import torch

    from src.models.momask import build_vq

    torch.manual_seed(0)
    m = build_vq(tiny_vq_config()).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in m.quantizer.layers:
            layer.codebook.copy_(torch.randn(layer.codebook.shape, generator=g))
    return m


def make_runs(ckpt_dir: Path, data_dir: Path, *, seed: int = 0, with_transformers: bool = True, vq_name: str = VQ,
              mask_name: str = MASK, res_name: str = RES, existing_vq: bool = False, text_encoder: str = "embedded",
              clip_dim: int = 512) -> Path:
    """Write tiny random VQ (+ mask and residual transformer) runs under ``ckpt_dir/synth``; returns ckpt_dir.
    ``existing_vq``: the VQ run ``vq_name`` is there already (e.g. trained); only the transformers are written.
    ``text_encoder``/``clip_dim``: the transformers' text side (the procedural mean by default; ``minilm``/384 is the
    quickstart's)."""
    import numpy as np
    import torch

    from src.config import MaskTransConfig, ResTransConfig
    from src.models.checkpoint import save_checkpoint
    from src.models.momask import build_mask_transformer, build_res_transformer, build_vq

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if existing_vq:
        from src.config import VQConfig

        vq_cfg = VQConfig.load(ckpt_dir / "synth" / vq_name / "opt.txt")
    else:
        vq_cfg = tiny_vq_config(vq_name)
        vq = build_vq(vq_cfg)
        with torch.no_grad():
            for layer in vq.quantizer.layers:
                layer.codebook.copy_(torch.randn(layer.codebook.shape, generator=g))
        d = ckpt_dir / "synth" / vq_name
        (d / "meta").mkdir(parents=True)
        vq_cfg.save(d / "opt.txt")
        mean = np.load(data_dir / "synth" / "Mean.npy")
        std = np.load(data_dir / "synth" / "Std.npy")
        np.save(d / "meta" / "mean.npy", mean)
        np.save(d / "meta" / "std.npy", std)
        save_checkpoint(d / "model" / "net_best_fid.tar", kind="vq", model=vq, epoch=1)
    if with_transformers:
        kw = {"dataset_name": "synth", "vq_name": vq_name, "latent_dim": 32, "n_layers": 1, "n_heads": 2, "ff_size": 64,
              "text_encoder": text_encoder, "clip_dim": clip_dim}
        for cls, build, name, kind in ((MaskTransConfig, build_mask_transformer, mask_name, "mask"),
                                       (ResTransConfig, build_res_transformer, res_name, "res")):
            cfg = cls(name=name, **kw)
            model = build(cfg, vq_cfg)
            rd = ckpt_dir / "synth" / name
            (rd / "model").mkdir(parents=True)
            cfg.save(rd / "opt.txt")
            save_checkpoint(rd / "model" / "net_best_fid.tar", kind=kind, model=model, epoch=1)
    return ckpt_dir


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> hash)."""
    from src.common.io import sha256_file

    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
