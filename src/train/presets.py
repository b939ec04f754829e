"""Named size/schedule presets for the MoMask trainers: ``tiny`` (CPU minutes on synth) and ``released`` (upstream).

Order of precedence when a run is configured: config defaults (upstream's option parsers) < preset < explicit flags.
``tiny`` is the default for ``--dataset_name synth``, ``released`` for every other dataset. Values use the opt.txt
field names; ``epoch_size`` (hmu only) caps the VQ windows drawn per epoch (0 = every window, as upstream).
"""
from __future__ import annotations

from src.common.errors import HmuError

KINDS = ("vq", "mask", "res", "len", "bamm")

# Upstream's released t2m models (rvq_nq6_dc512_nc512_noshare_qdp0.2, t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns,
# tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw, length_estimator); the rest are the option parsers' defaults.
RELEASED: dict[str, dict] = {
    "vq": {"num_quantizers": 6, "nb_code": 512, "code_dim": 512, "output_emb_width": 512,
           "quantize_dropout_prob": 0.2, "batch_size": 256, "max_epoch": 50, "epoch_size": 0},
    "mask": {"latent_dim": 384, "n_layers": 8, "n_heads": 6, "ff_size": 1024, "cond_drop_prob": 0.1,
             "batch_size": 64, "max_epoch": 500, "text_encoder": "clip", "clip_dim": 512},
    "res": {"latent_dim": 384, "n_layers": 8, "n_heads": 6, "ff_size": 1024, "cond_drop_prob": 0.2,
            "share_weight": True, "batch_size": 64, "max_epoch": 500, "text_encoder": "clip", "clip_dim": 512},
    "len": {"batch_size": 64, "max_epoch": 300, "lr": 1e-4, "text_encoder": "clip", "input_size": 512,
            "output_size": 50},
    # BAMM's released transformer (fixtures/upstream/bamm/released_opt.txt): MoMask's sizes, dropout 0.2
    "bamm": {"latent_dim": 384, "n_layers": 8, "n_heads": 6, "ff_size": 1024, "dropout": 0.2, "cond_drop_prob": 0.1,
             "batch_size": 64, "max_epoch": 500, "trans": "official", "text_encoder": "clip", "clip_dim": 512},
}

# Sized for ~3000 synth motions on 2 CPU cores: VQ ~1.5 min, mask ~1.5 min, residual ~1 min, length < 30 s.
# Q >= 2 and a small codebook, so the residual transformer and LCR have something to work with.
# balance_actions 1.0 (issue 30): windows / motions drawn in proportion to share(action) ** -1 of their labelled
# frames, so synth's rare actions (a kick is 1.5 % of the frames) are learnt within the same number of steps; with
# uniform windows the VQ-VAE returned ground-truth kicks with the ankle at 0.25 m instead of 0.71 m. 15 VQ epochs,
# not 10: balanced windows at 10 epochs reach 0.50 m and cost the travelling actions' root (walk MPJPE 202 -> 379 mm);
# 15 reach 0.63 m and give it back (234 mm) (docs/results/action_figures/).
TINY: dict[str, dict] = {
    "vq": {"num_quantizers": 3, "nb_code": 128, "code_dim": 64, "output_emb_width": 64, "width": 128, "depth": 2,
           "quantize_dropout_prob": 0.2, "window_size": 32, "batch_size": 64, "max_epoch": 15, "epoch_size": 6400,
           "lr": 1e-3, "warm_up_iter": 100, "milestones": [100_000], "eval_every_e": 1, "balance_actions": 1.0},
    "mask": {"latent_dim": 128, "n_layers": 2, "n_heads": 4, "ff_size": 256, "dropout": 0.1, "cond_drop_prob": 0.1,
             "batch_size": 64, "max_epoch": 15, "lr": 1e-3, "warm_up_iter": 100, "milestones": [100_000],
             "text_encoder": "minilm", "clip_dim": 384, "balance_actions": 1.0},
    "res": {"latent_dim": 128, "n_layers": 2, "n_heads": 4, "ff_size": 256, "dropout": 0.1, "cond_drop_prob": 0.2,
            "share_weight": True, "batch_size": 64, "max_epoch": 10, "lr": 1e-3, "warm_up_iter": 100,
            "milestones": [100_000], "text_encoder": "minilm", "clip_dim": 384, "balance_actions": 1.0},
    "len": {"batch_size": 64, "max_epoch": 40, "lr": 1e-3, "text_encoder": "minilm", "input_size": 384,
            "output_size": 50},
    # the masked transformer's tiny sizes, so BAMM and MoMask compare at equal capacity on the same VQ
    "bamm": {"latent_dim": 128, "n_layers": 2, "n_heads": 4, "ff_size": 256, "dropout": 0.1, "cond_drop_prob": 0.1,
             "batch_size": 64, "max_epoch": 15, "lr": 1e-3, "warm_up_iter": 100, "milestones": [100_000],
             "trans": "official", "text_encoder": "minilm", "clip_dim": 384, "balance_actions": 1.0},
}
# Without the pretrained text packages (requirements-text.txt) the tiny preset falls back to the procedural encoder.
FALLBACK_TEXT = {"text_encoder": "embedded", "clip_dim": 512, "input_size": 512}

PRESETS: dict[str, dict[str, dict]] = {"tiny": TINY, "released": RELEASED}


def default_preset(dataset_name: str) -> str:
    """``tiny`` for the embedded procedural dataset, ``released`` otherwise."""
    from src.common.datasets import get_spec

    return "tiny" if get_spec(dataset_name).synthetic else "released"


def preset_values(preset: str, kind: str) -> dict:
    """A copy of the preset's values for one model kind (``vq``, ``mask``, ``res``, ``len``, ``bamm``)."""
    if preset not in PRESETS:
        raise HmuError(f"unknown --preset '{preset}' (known: {', '.join(PRESETS)})")
    if kind not in KINDS:
        raise ValueError(f"unknown model kind '{kind}'")
    values = {k: (list(v) if isinstance(v, list) else v) for k, v in PRESETS[preset][kind].items()}
    if values.get("text_encoder") == "minilm":
        from src.data.pretrained import minilm_available

        if not minilm_available():
            import logging

            logging.getLogger(__name__).warning(
                "preset %s: the MiniLM sentence encoder is not installed (requirements-text.txt); using the procedural "
                "text encoder instead (text_encoder embedded)", preset)
            values.update({k: v for k, v in FALLBACK_TEXT.items() if k in values})
    return values
