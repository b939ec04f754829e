"""What the attack commands share (python -m src.attacks, python -m src.attacks.relearn): model specs, the generator
behind each, synth's prompt files as prompts, the forget training motions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from src.common.errors import HmuError


# ---------------------------------------------------------------------------------------------------- model specs
@dataclass(frozen=True)
class ModelSpec:
    label: str
    name: str
    ckpt: str
    vq_name: str | None
    res_name: str | None
    res_ckpt: str


def _name_ckpt(text: str, default_ckpt: str, where: str) -> tuple[str, str]:
    name, _, ckpt = text.partition(":")
    if not name.strip():
        raise HmuError(f"--models: empty run name in '{where}'")
    return name.strip(), (ckpt.strip() or default_ckpt)


def parse_models(text: str, *, ckpt: str = "net_best_fid.tar", res_name: str | None = None,
                 res_ckpt: str = "net_best_fid.tar") -> list[ModelSpec]:
    """``label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none],...`` -> specs (labels unique)."""
    out: list[ModelSpec] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        label, eq, rest = item.partition("=")
        if not eq or not label.strip() or not rest.strip():
            raise HmuError(f"--models: '{item}' is not label=NAME")
        label = label.strip()
        if any(m.label == label for m in out):
            raise HmuError(f"--models: label '{label}' given twice")
        parts = rest.split("+")
        name, ck = _name_ckpt(parts[0], ckpt, item)
        vq, res, rck = None, res_name, res_ckpt
        for mod in parts[1:]:
            key, eq, val = mod.partition("=")
            if key.strip() == "vq" and eq and ":" not in val:
                vq = _name_ckpt(val, "", item)[0]
            elif key.strip() == "res" and eq:
                res, rck = _name_ckpt(val, res_ckpt, item)
            else:
                raise HmuError(f"--models: bad modifier '+{mod}' in '{item}' (use +vq=NAME or +res=NAME[:CKPT])")
        if res is not None and res.lower() == "none":
            res = None
        out.append(ModelSpec(label, name, ck, vq, res, rck))
    if not out:
        raise HmuError("--models is empty")
    return out


def load_target(paths, dataset_name: str, spec: ModelSpec, *, device, sampling: dict, clip_path: str | None = None):
    """A :class:`src.attacks.target.MoMaskTarget` around ``src.gen.generate.load_generator`` (strict loads, no fall-back)."""
    from src.attacks.target import MoMaskTarget

    try:
        from src.gen.generate import load_generator
    except ImportError as exc:
        raise HmuError(f"generation is not available: src/gen/generate.py with load_generator() is missing ({exc})") from None
    gen = load_generator(dataset_name=dataset_name, name=spec.name, res_name=spec.res_name, vq_name=spec.vq_name,
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                         glove_dir=paths.glove(dataset_name), ckpt=spec.ckpt, res_ckpt=spec.res_ckpt, device=device,
                         clip_path=clip_path, **sampling)
    info = {"name": spec.name, "ckpt": spec.ckpt, "vq_name": spec.vq_name, "res_name": spec.res_name,
            "res_ckpt": spec.res_ckpt if spec.res_name else None,
            "text_encoder": type(gen.text_encoder).__name__, "sampling": gen.sampling()}
    return MoMaskTarget(gen), info


# ---------------------------------------------------------------------------------------------------- data
def _prompts_from(objs: list, where: str, spec, concept: str | None = None) -> list:
    from src.data.prompts import Prompt

    out = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict) or "text" not in o or "length" not in o:
            raise HmuError(f"{where} [{i}] lacks text/length")
        if concept is not None and concept not in (o.get("concepts") or ()):
            continue
        n = spec.crop_length(o["length"], at_least_one_unit=True)
        out.append(Prompt(o["text"], n, action=o.get("action"), concepts=tuple(o.get("concepts") or ()),
                          segments=tuple(o.get("segments") or ())))
    return out


def forget_train_ids(root: Path, labels: dict, concept: str) -> list[str]:
    """Training motions whose ground-truth labels hold ``concept`` (synth's labels.json)."""
    from src.data.humanml3d import read_split

    train = read_split(root / "train.txt")
    motions = labels.get("motions", {})
    return [m for m in train if concept in (motions.get(m, {}).get("concepts") or ())]
