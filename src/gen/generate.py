"""Text-to-motion generation with a trained MoMask or BAMM (VQ + masked/BAMM + residual transformer [+ length
estimator]). The family is read from the transformer run's opt.txt (:func:`run_family`).

CLI (src/gen/__main__.py): ``python -m src.gen --name <mask run> --res_name <residual run> --dataset_name synth --text_prompt "a person
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
from typing import Any

from src.common.errors import HmuError

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


MAX_MOTIONS = 100_000  # motions one src.gen run writes (prompts x repeat_times)


def check_generation_count(n_prompts: int, repeat_times: int) -> None:
    """One-line HmuError unless 1 <= prompts x ``repeat_times`` <= :data:`MAX_MOTIONS` (checked before any work:
    ``--repeat_times 1e9`` would otherwise build a billion captions and appear to hang)."""
    if repeat_times < 1:
        raise HmuError(f"--repeat_times must be >= 1, got {repeat_times}")
    total = n_prompts * repeat_times
    if total > MAX_MOTIONS:
        raise HmuError(f"{n_prompts} prompt{'s' if n_prompts != 1 else ''} x --repeat_times {repeat_times} = {total} "
                       f"motions, more than one run writes ({MAX_MOTIONS}); split the prompts over several runs")


def warn_length_changes(lengths: Sequence[int], *, unit: int, max_frames: int) -> None:
    """Say (one warning line each) when requested frame lengths cannot be generated as asked: above the model's
    maximum they are cut to it, below one token they become one token (``unit`` frames)."""
    long = [int(l) for l in lengths if int(l) > max_frames]
    short = [int(l) for l in lengths if 1 <= int(l) < unit]
    if long:
        log.warning("motion length %s frames is above the model's maximum of %d frames: generating %d frames "
                    "(%d motion%s)", max(long), max_frames, max_frames, len(long), "s" if len(long) > 1 else "")
    if short:
        log.warning("motion length %s frames is shorter than one token (%d frames): generating %d frames "
                    "(%d motion%s)", min(short), unit, unit, len(short), "s" if len(short) > 1 else "")


class MotionGenerator:
    """Captions (+ frame lengths) -> raw motion features. Models are used as given (eval mode, never modified).

    ``mean``/``std`` (dim_pose,) are the VQ run's normalisation (``meta/{mean,std}.npy``). ``len_estimator`` is
    needed only when a length is missing. ``res`` may be None (base layer only, as ``--res_name ''`` upstream).
    """

    def __init__(self, *, vq, mask, res=None, text_encoder, mean, std, len_estimator=None,
                 unit_length: int | None = None, max_motion_length: int = 196, batch_size: int = 64,
                 time_steps: int = 18, cond_scale: float = 4.0, res_cond_scale: float = 5.0, temperature: float = 1.0,
                 topkr: float = 0.9, gumbel_sample: bool = False, cfg_batch: bool | None = None):
        import numpy as np

        from src.models.momask.transformer import CFG_BATCH

        self.vq, self.mask, self.res, self.len_estimator = vq, mask, res, len_estimator
        self.text_encoder = text_encoder
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.unit_length = int(unit_length or vq.downsample)
        self.max_tokens = max(1, int(max_motion_length) // self.unit_length)
        self.batch_size = int(batch_size)
        self.time_steps, self.cond_scale, self.res_cond_scale = int(time_steps), float(cond_scale), float(res_cond_scale)
        self.temperature, self.topkr, self.gumbel_sample = float(temperature), float(topkr), bool(gumbel_sample)
        # classifier-free guidance's conditional and unconditional passes as one doubled-batch forward (MoMask's
        # masked and residual transformers; BAMM always does so, as upstream). Default on: the token ids of upstream's
        # parity fixtures are unchanged (tests/test_generate_parity.py); False = upstream's two forwards.
        self.cfg_batch = CFG_BATCH if cfg_batch is None else bool(cfg_batch)
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
                # cut before the tensor: a length of 1e23 frames would overflow int64 (warned about below)
                out[i] = min(int(l), self.max_tokens * self.unit_length) // self.unit_length
        warn_length_changes([l for l in lengths if l is not None], unit=self.unit_length,
                            max_frames=self.max_tokens * self.unit_length)
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
                                 gsample=self.gumbel_sample, generator=generator, cfg_batch=self.cfg_batch)
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
                                        generator=generator, cfg_batch=self.cfg_batch)
            else:
                ids = ids.unsqueeze(-1)
        return ids, m_lens

    def generate(self, captions: Sequence[str], lengths: Sequence[int | None] | None = None, *, generator):
        """Captions, lengths in frames (None: estimated) -> raw un-normalised features, one (T_i, dim_pose) float32
        array each, ``T_i = (length // unit_length) * unit_length`` (at least one unit), as upstream crops."""
        return self.generate_coded(captions, lengths, generator=generator)[0]

    def generate_coded(self, captions: Sequence[str], lengths: Sequence[int | None] | None = None, *, generator):
        """:meth:`generate` and the code ids each motion was decoded from: -> (features, ids), ids one (T_i', Q)
        int64 array per motion (``T_i = T_i' * unit_length``)."""
        import numpy as np
        import torch

        captions = list(captions)
        if lengths is not None and len(lengths) != len(captions):
            raise HmuError(f"{len(captions)} captions but {len(lengths)} lengths")
        was = [(m, m.training) for m in (self.vq, self.mask, self.res, self.len_estimator) if m is not None]
        for m, _ in was:
            m.eval()
        out: list[np.ndarray] = []
        codes: list[np.ndarray] = []
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
                    codes.append(ids[k, :n].cpu().numpy().astype(np.int64))
        finally:
            for m, training in was:
                m.train(training)
        return out, codes


class BAMMGenerator(MotionGenerator):
    """MotionGenerator whose base layer is BAMM's cascaded decoding (``mask`` is a BAMMTransformer).

    Given lengths are kept; a missing length comes from the length estimator when one is loaded, else from BAMM's
    own END prediction (up to ``max_motion_length``). ``time_steps``, ``topkr`` and ``gumbel_sample`` apply to the
    residual layers only (BAMM samples its tokens from the full distribution, as upstream).
    """

    def __init__(self, *, refine_cond_scale: float = 3.0, **kwargs):
        super().__init__(**kwargs)  # cfg_batch applies to the residual layers (BAMM's own passes are always batched)
        self.refine_cond_scale = float(refine_cond_scale)

    def sampling(self) -> dict[str, Any]:
        return {"family": "bamm", "cond_scale": self.cond_scale, "refine_cond_scale": self.refine_cond_scale,
                "res_cond_scale": self.res_cond_scale, "temperature": self.temperature, "topkr": self.topkr}

    def _bamm(self, cond, m_lens, *, predict_length: bool, generator):
        return self.mask.generate(cond, m_lens, cond_scale=self.cond_scale, refine_cond_scale=self.refine_cond_scale,
                                  predict_length=predict_length, max_len=self.max_tokens,  # upstream: always 49 steps
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
        return ids, m_lens  # full width (max_tokens + 1), as upstream feeds the residual transformer


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
    from src.common.datasets import get_spec
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
        from src.models.edit_pair import check_pair

        res, _, res_dir = load_res_transformer(paths, dataset_name, res_name, ckpt=res_ckpt or ckpt, vq_cfg=vq_cfg)
        check_pair(mask_dir, res_dir)  # the two runs of one edit must come from the same edit
    len_est = None
    want_len = len_name or "length_estimator"
    # BAMM predicts its own lengths (END token): an estimator is used only when named
    auto_len = family == "momask" and any(c.is_dir() for c in run_dir_candidates(paths, dataset_name, want_len))
    if len_name or auto_len:
        try:
            len_est, _, _ = load_len_estimator(paths, dataset_name, want_len, input_size=mask_cfg.clip_dim)
        except HmuError as exc:
            if len_name:
                raise
            # found, not asked for: e.g. trained on another text encoder's features
            log.warning("length estimator '%s' not used (%s); prompts without a length need --len_name", want_len,
                        exc)
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
    from src.gen.gated import GATE_FILE, load_gated

    if (mask_dir / "model" / GATE_FILE).is_file():   # a gated task-vector run: adapter + gate, per-prompt alpha
        gen = load_gated(gen, mask_dir)
        gen.sources["gate"] = gen.gate.kind
    return gen
