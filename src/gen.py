"""Text-to-motion generation with a trained MoMask or BAMM (VQ + masked/BAMM + residual transformer [+ length
estimator]). The family is read from the transformer run's opt.txt (:func:`run_family`).

CLI: ``python -m src.gen --name <mask run> --res_name <residual run> --dataset_name synth --text_prompt "a person
kicks"`` writes ``<out>/features/*.npy`` (raw features (T, dim_pose)), ``<out>/joints/*.npy`` ((T, joints, 3)) and
``<out>/prompts.json`` (the index). Library: ``load_generator(...)`` or ``MotionGenerator(vq=..., mask=..., ...)``
from in-memory models, then ``generate(captions, lengths, generator=torch.Generator)``.

Sampling follows upstream (gen_t2m.py / eval_option.py defaults): iterative masked decoding of the base layer
(``time_steps`` steps, cosine schedule, classifier-free guidance ``cond_scale``, top-k filtering ``topkr``,
``temperature``), then the residual layers (guidance ``res_cond_scale``), then the VQ decoder. All randomness comes
from the ``torch.Generator`` passed in; the global RNG is never used, so a seed gives the same motions. BAMM
(:class:`BAMMGenerator`) replaces only the base layer: cascaded autoregressive decoding (guidance ``cond_scale``,
then ``refine_cond_scale`` for the refinement pass); the residual layers and the VQ decoding are MoMask's.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli

log = logging.getLogger(__name__)

SAMPLING_DEFAULTS = {"time_steps": 18, "cond_scale": 4.0, "res_cond_scale": 5.0, "temperature": 1.0, "topkr": 0.9,
                         "gumbel_sample": False}
FAMILIES = ("momask", "bamm")
FAMILY_KEY = "model_family"  # hmu-only opt.txt key written by src.train.bamm


def run_family(opt_path: str | os.PathLike) -> str:
    """``momask`` or ``bamm`` for a transformer run's opt.txt: its ``model_family`` key if present, else ``bamm``
    when it has upstream BAMM's ``trans`` option (released BAMM runs), else ``momask``."""
    from src.config import read_opt_file

    raw = read_opt_file(opt_path)
    family = raw.get(FAMILY_KEY) or ("bamm" if "trans" in raw else "momask")
    if family not in FAMILIES:
        raise HmuError(f"{opt_path}: {FAMILY_KEY} {family!r} is not one of {', '.join(FAMILIES)}")
    return family


class MotionGenerator:
    """Captions (+ frame lengths) -> raw motion features. Models are used as given (eval mode, never modified).

    ``mean``/``std`` (dim_pose,) are the VQ run's normalisation (``meta/{mean,std}.npy``). ``len_estimator`` is
    needed only when a length is missing. ``res`` may be None (base layer only, as ``--res_name ''`` upstream).
    """

    def __init__(self, *, vq, mask, res=None, text_encoder, mean, std, len_estimator=None,
                 unit_length: int | None = None, max_motion_length: int = 196, batch_size: int = 64,
                 time_steps: int = 18, cond_scale: float = 4.0, res_cond_scale: float = 5.0, temperature: float = 1.0,
                 topkr: float = 0.9, gumbel_sample: bool = False):
        import numpy as np

        self.vq, self.mask, self.res, self.len_estimator = vq, mask, res, len_estimator
        self.text_encoder = text_encoder
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.unit_length = int(unit_length or vq.downsample)
        self.max_tokens = max(1, int(max_motion_length) // self.unit_length)
        self.batch_size = int(batch_size)
        self.time_steps, self.cond_scale, self.res_cond_scale = int(time_steps), float(cond_scale), float(res_cond_scale)
        self.temperature, self.topkr, self.gumbel_sample = float(temperature), float(topkr), bool(gumbel_sample)
        self.sources: dict[str, Any] = {}  # run names, filled by load_generator

    @property
    def device(self):
        return next(self.mask.parameters()).device

    def sampling(self) -> dict[str, Any]:
        return {"time_steps": self.time_steps, "cond_scale": self.cond_scale, "res_cond_scale": self.res_cond_scale,
                    "temperature": self.temperature, "topkr": self.topkr, "gumbel_sample": self.gumbel_sample}

    def token_lengths(self, cond, lengths: Sequence[int | None] | None, generator):
        """Frames -> tokens (floor, within [1, max]); missing ones drawn from the length estimator's distribution."""
        import torch

        n = cond.shape[0]
        lengths = [None] * n if lengths is None else list(lengths)
        if len(lengths) != n:
            raise HmuError(f"{n} captions but {len(lengths)} lengths")
        out = torch.zeros(n, dtype=torch.long, device=cond.device)
        missing = [i for i, l in enumerate(lengths) if l is None]
        for i, l in enumerate(lengths):
            if l is not None:
                if int(l) < 1:
                    raise HmuError(f"motion length must be >= 1 frame, got {l}")
                out[i] = int(l) // self.unit_length
        if missing:
            if self.len_estimator is None:
                raise HmuError("no motion length given and no length estimator loaded "
                               "(pass --motion_length, 'text#frames' lines, or train src.train.length)")
            with torch.no_grad():
                probs = self.len_estimator(cond[missing]).softmax(dim=-1)
            out[missing] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return out.clamp(1, self.max_tokens)

    def base_ids(self, cond, lengths, *, generator):
        """Text features (B, clip_dim), frame lengths -> (layer-0 ids (B, T') with -1 at pads, token lengths (B,))."""
        m_lens = self.token_lengths(cond, lengths, generator)
        ids = self.mask.generate(cond, m_lens, timesteps=self.time_steps, cond_scale=self.cond_scale,
                                 temperature=self.temperature, topk_filter_thres=self.topkr,
                                 gsample=self.gumbel_sample, generator=generator)
        return ids, m_lens

    def generate_ids(self, captions: Sequence[str], lengths=None, *, generator):
        """-> (code ids (B, T', Q) with -1 at pads, token lengths (B,)) for one batch."""
        import torch

        with torch.no_grad():
            cond = self.text_encoder.encode(list(captions)).float().to(self.device)
            ids, m_lens = self.base_ids(cond, lengths, generator=generator)
            if self.res is not None:
                ids = self.res.generate(ids, cond, m_lens, temperature=self.temperature,
                                        topk_filter_thres=self.topkr, cond_scale=self.res_cond_scale,
                                        generator=generator)
            else:
                ids = ids.unsqueeze(-1)
        return ids, m_lens

    def generate(self, captions: Sequence[str], lengths: Sequence[int | None] | None = None, *, generator):
        """Captions, lengths in frames (None: estimated) -> raw un-normalised features, one (T_i, dim_pose) float32
        array each, ``T_i = (length // unit_length) * unit_length`` (at least one unit), as upstream crops."""
        import numpy as np
        import torch

        captions = list(captions)
        if lengths is not None and len(lengths) != len(captions):
            raise HmuError(f"{len(captions)} captions but {len(lengths)} lengths")
        was = [(m, m.training) for m in (self.vq, self.mask, self.res, self.len_estimator) if m is not None]
        for m, _ in was:
            m.eval()
        out: list[np.ndarray] = []
        try:
            for i in range(0, len(captions), self.batch_size):
                caps = captions[i:i + self.batch_size]
                lens = None if lengths is None else list(lengths)[i:i + self.batch_size]
                ids, m_lens = self.generate_ids(caps, lens, generator=generator)
                with torch.no_grad():
                    feats = self.vq.forward_decoder(ids).float().cpu().numpy()
                feats = feats * self.std + self.mean
                for k, n in enumerate(m_lens.tolist()):
                    out.append(np.ascontiguousarray(feats[k, :n * self.unit_length], dtype=np.float32))
        finally:
            for m, training in was:
                m.train(training)
        return out


class BAMMGenerator(MotionGenerator):
    """MotionGenerator whose base layer is BAMM's cascaded decoding (``mask`` is a BAMMTransformer).

    Given lengths are kept; a missing length comes from the length estimator when one is loaded, else from BAMM's
    own END prediction (up to ``max_motion_length``). ``time_steps``, ``topkr`` and ``gumbel_sample`` apply to the
    residual layers only (BAMM samples its tokens from the full distribution, as upstream).
    """

    def __init__(self, *, refine_cond_scale: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.refine_cond_scale = float(refine_cond_scale)

    def sampling(self) -> dict[str, Any]:
        return {"family": "bamm", "cond_scale": self.cond_scale, "refine_cond_scale": self.refine_cond_scale,
                "res_cond_scale": self.res_cond_scale, "temperature": self.temperature, "topkr": self.topkr}

    def _bamm(self, cond, m_lens, *, predict_length: bool, generator):
        return self.mask.generate(cond, m_lens, cond_scale=self.cond_scale, refine_cond_scale=self.refine_cond_scale,
                                  predict_length=predict_length, max_len=self.max_tokens if predict_length else None,
                                  temperature=self.temperature, generator=generator)

    def base_ids(self, cond, lengths, *, generator):
        import torch

        n = cond.shape[0]
        lengths = [None] * n if lengths is None else list(lengths)
        missing = [i for i, l in enumerate(lengths) if l is None]
        if not missing or self.len_estimator is not None:
            return self._bamm(cond, self.token_lengths(cond, lengths, generator), predict_length=False,
                              generator=generator)
        given = [i for i in range(n) if lengths[i] is not None]
        parts = []  # (row indices, ids, lengths): given lengths kept, missing ones predicted by BAMM
        if given:
            m = self.token_lengths(cond[given], [lengths[i] for i in given], generator)
            parts.append((given, *self._bamm(cond[given], m, predict_length=False, generator=generator)))
        placeholder = torch.full((len(missing),), self.max_tokens, dtype=torch.long, device=cond.device)
        parts.append((missing, *self._bamm(cond[missing], placeholder, predict_length=True, generator=generator)))
        width = max(p[1].shape[1] for p in parts)
        ids = torch.full((n, width), -1, dtype=torch.long, device=cond.device)
        m_lens = torch.zeros(n, dtype=torch.long, device=cond.device)
        for rows, part_ids, part_lens in parts:
            ids[rows, :part_ids.shape[1]] = part_ids
            m_lens[rows] = part_lens
        return ids[:, :int(m_lens.max())], m_lens


def load_generator(*, dataset_name: str, name: str, res_name: str | None, vq_name: str | None = None,
                   checkpoints_dir: str | os.PathLike | None = None, ckpt: str = "net_best_fid.tar",
                   res_ckpt: str | None = None, device=None, text_encoder=None, len_name: str | None = None,
                   clip_path: str | os.PathLike | None = None, glove_dir: str | os.PathLike | None = None,
                   dataset_dir: str | os.PathLike | None = None, model: str | None = None,
                   **sampling) -> MotionGenerator:
    """Load runs ``checkpoints/<dataset>/{name, res_name, vq_name}`` strictly into a MotionGenerator on ``device``.

    ``name`` is a MoMask masked-transformer run or a BAMM run (then a :class:`BAMMGenerator`), told apart by its
    opt.txt (:func:`run_family`); ``model`` ('momask' | 'bamm'), when given, must agree with it.

    ``vq_name`` defaults to the one in the masked transformer's opt.txt. ``res_name`` None or '' skips the residual
    layers. ``len_name`` (default ``length_estimator``) is loaded when that run exists; naming one that does not is an
    error. ``text_encoder`` defaults to the one the masked transformer was trained with. ``sampling``: time_steps,
    cond_scale, res_cond_scale, temperature, topkr, gumbel_sample, batch_size.
    """
    import torch

    from src.common.paths import Paths
    from src.config import MaskTransConfig, VQConfig
    from src.data.spec import get_spec
    from src.models.checkpoint import (
        find_run_dir,
        load_len_estimator,
        load_mask_transformer,
        load_mean_std,
        load_res_transformer,
        load_vq,
        run_dir_candidates,
    )
    from src.models.text_encoders import build_text_encoder

    paths = Paths.default(checkpoints_dir=checkpoints_dir, dataset_dir=dataset_dir)
    device = torch.device(device) if device is not None else torch.device("cpu")
    spec = get_spec(dataset_name)
    mask_dir = find_run_dir(paths, dataset_name, name)
    family = run_family(mask_dir / "opt.txt")
    if model is not None and model != family:
        raise HmuError(f"--model {model}: run '{name}' is a {family} run ({mask_dir / 'opt.txt'})")
    if family == "bamm":
        from src.models.bamm import BAMMTransConfig as cfg_cls
    else:
        cfg_cls = MaskTransConfig
    mask_cfg = cfg_cls.load(mask_dir / "opt.txt")
    vq_name = vq_name or mask_cfg.vq_name
    vq, vq_cfg, vq_dir = load_vq(paths, dataset_name, vq_name, ckpt="net_best_fid.tar")
    if vq_name != mask_cfg.vq_name:
        trained = VQConfig.load(find_run_dir(paths, dataset_name, mask_cfg.vq_name) / "opt.txt")
        if (trained.nb_code, trained.code_dim) != (vq_cfg.nb_code, vq_cfg.code_dim):
            raise HmuError(f"VQ '{vq_name}' ({vq_cfg.nb_code} codes x {vq_cfg.code_dim}) does not fit transformer "
                           f"'{name}', trained on '{mask_cfg.vq_name}' ({trained.nb_code} x {trained.code_dim})")
        log.info("using VQ %s instead of %s (the transformer's)", vq_name, mask_cfg.vq_name)
    if family == "bamm":
        from src.models.bamm import load_bamm_run

        mask, mask_cfg = load_bamm_run(mask_dir, vq=vq_cfg, which=ckpt)
    else:
        mask, mask_cfg, _ = load_mask_transformer(paths, dataset_name, name, ckpt=ckpt, vq_cfg=vq_cfg)
    res = None
    if res_name:
        res, _, _ = load_res_transformer(paths, dataset_name, res_name, ckpt=res_ckpt or ckpt, vq_cfg=vq_cfg)
    len_est = None
    want_len = len_name or "length_estimator"
    # BAMM predicts its own lengths (END token): an estimator is used only when named
    auto_len = family == "momask" and any(c.is_dir() for c in run_dir_candidates(paths, dataset_name, want_len))
    if len_name or auto_len:
        len_est, _, _ = load_len_estimator(paths, dataset_name, want_len, input_size=mask_cfg.clip_dim)
    if text_encoder is None:
        text_encoder = build_text_encoder(mask_cfg.text_encoder, clip_path=clip_path,
                                          glove_dir=glove_dir or paths.glove(dataset_name), dim=mask_cfg.clip_dim,
                                          device=device, data_root=paths.data_root(dataset_name))
    mean, std = load_mean_std(vq_dir)
    for m in (vq, mask, res, len_est):
        if m is not None:
            m.to(device)
    cls = BAMMGenerator if family == "bamm" else MotionGenerator
    gen = cls(vq=vq, mask=mask, res=res, text_encoder=text_encoder, mean=mean, std=std,
              len_estimator=len_est, unit_length=mask_cfg.unit_length,
              max_motion_length=min(mask_cfg.max_motion_length, spec.max_motion_length), **sampling)
    gen.sources = {"name": name, "ckpt": ckpt, "res_name": res_name or None, "vq_name": vq_name,
                   "len_name": want_len if len_est is not None else None, "family": family}
    return gen


# ------------------------------------------------------------------------------------------------------------ CLI

def build_parser():
    import argparse

    from src.common.device import add_device_args

    p = argparse.ArgumentParser(description="Generate motions from text with a trained MoMask or BAMM (family read from opt.txt).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--name", required=True, help="masked transformer (or BAMM) run")
    p.add_argument("--res_name", default="", help="residual transformer run ('' = base layer only)")
    p.add_argument("--vq_name", default=None, help="VQ run (default: the one the transformer was trained on)")
    p.add_argument("--len_name", default=None, help="length estimator run (default: length_estimator, if present)")
    p.add_argument("--dataset_name", default="synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    p.add_argument("--text_prompt", default="", help="one prompt")
    p.add_argument("--text_path", default="", help="file of prompts, one per line, 'text' or 'text#frames'")
    p.add_argument("--motion_length", type=int, default=0, help="frames for --text_prompt (0 = estimate)")
    p.add_argument("--repeat_times", type=int, default=1, help="samples per prompt")
    p.add_argument("--seed", type=int, default=10107, help="sampling seed (same seed, same motions)")
    p.add_argument("--out", default=None, help="output folder (default results/gen/<name>/<ext>)")
    p.add_argument("--ext", default="default", help="sub-folder name under results/gen/<name>")
    p.add_argument("--ckpt", default="net_best_fid.tar", help="transformer checkpoint file (or latest.tar)")
    p.add_argument("--batch_size", type=int, default=64, help="prompts per forward pass")
    for k, v in SAMPLING_DEFAULTS.items():
        if isinstance(v, bool):
            p.add_argument(f"--{k}", action="store_true", help="Gumbel-max instead of multinomial sampling")
        else:
            p.add_argument(f"--{k}", type=type(v), default=v, help=k.replace("_", " "))
    p.add_argument("--clip_path", default=None, help="CLIP ViT-B-32.pt for clip-conditioned models")
    p.add_argument("--glove_dir", default=None, help="word vectors for the embedded text encoder")
    p.add_argument("--checkpoints_dir", default=None, help="checkpoints root (env HMU_CHECKPOINTS)")
    p.add_argument("--dataset_dir", default=None, help="datasets root (env HMU_DATASET)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder's files")
    add_device_args(p)
    return p


def read_prompts(args) -> tuple[list[str], list[int | None]]:
    """(--text_prompt, --motion_length) or the lines of --text_path ('text' or 'text#frames')."""
    if bool(args.text_prompt) == bool(args.text_path):
        raise HmuError("give exactly one of --text_prompt and --text_path")
    if args.text_prompt:
        return [args.text_prompt], [args.motion_length or None]
    path = Path(args.text_path)
    if not path.is_file():
        raise HmuError(f"--text_path file not found: {path}")
    texts, lengths = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        text, _, tail = line.strip().partition("#")
        tail = tail.strip().split("#")[-1] if tail else ""
        if tail and not tail.isdigit():
            raise HmuError(f"{path}:{n}: length after '#' must be a frame count, got {tail!r}")
        texts.append(text.strip())
        lengths.append(int(tail) if tail else None)
    if not texts:
        raise HmuError(f"--text_path {path} has no prompts")
    return texts, lengths


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    texts, lengths = read_prompts(args)
    if args.repeat_times < 1:
        raise HmuError("--repeat_times must be >= 1")

    from src.common.device import resolve_device
    from src.common.io import atomic_save_npy, atomic_write_json, refuse_overwrite
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.data.spec import get_spec

    setup_logging()
    from src.data.prompt_check import check_prompts

    paths0 = Paths.default(dataset_dir=args.dataset_dir, glove_dir=args.glove_dir)
    check_prompts(texts, glove_dir=paths0.glove(get_spec(args.dataset_name).name))
    device = resolve_device(args.gpu_id, args.device)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    out = Path(args.out) if args.out else paths.results_dir / "gen" / args.name / args.ext
    refuse_overwrite(out / "prompts.json", args.force, what="generation index")
    sampling = {k: getattr(args, k) for k in SAMPLING_DEFAULTS}
    gen = load_generator(dataset_name=args.dataset_name, name=args.name, res_name=args.res_name,
                         vq_name=args.vq_name, checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir,
                         ckpt=args.ckpt, device=device, len_name=args.len_name, clip_path=args.clip_path,
                         glove_dir=args.glove_dir, batch_size=args.batch_size, **sampling)
    caps = [t for _ in range(args.repeat_times) for t in texts]
    lens = [l for _ in range(args.repeat_times) for l in lengths]
    feats = gen.generate(caps, lens, generator=torch_generator(args.seed, device=device))
    joints_num = get_spec(args.dataset_name).joints_num
    items = []
    for i, f in enumerate(feats):
        k, r = i % len(texts), i // len(texts)
        stem = f"p{k:03d}_r{r}"
        atomic_save_npy(out / "features" / f"{stem}.npy", f)
        atomic_save_npy(out / "joints" / f"{stem}.npy", recover_from_ric(f, joints_num))
        items.append({"prompt_id": k, "repeat": r, "text": texts[k], "requested_length": lengths[k],
                      "length": len(f), "features": f"features/{stem}.npy", "joints": f"joints/{stem}.npy"})
    atomic_write_json(out / "prompts.json", {**gen.sources, "dataset_name": args.dataset_name, "seed": args.seed,
                                             "sampling": gen.sampling(), "items": items})
    print(f"{len(items)} motions ({len(texts)} prompts x {args.repeat_times}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
