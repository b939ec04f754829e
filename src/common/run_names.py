"""Default run names per dataset: the one table every CLI takes its ``--vq_name`` / ``--trans_name`` / ``--res_name``
(and length-estimator) defaults from.

- HumanML3D (``t2m``): upstream's released MoMask runs, as upstream's own option code names them (the fixture
  manifests ``momask/manifests/{vq,mtrans,rtrans}_opt.txt``); the residual run ends in ``_sw`` (share_weight).
- KIT-ML (``kit``): the released KIT runs (momask-codes README: the same names with ``_k``).
- synth: the quickstart's runs (``src/quickstart.py`` trains them under these names).
- Any other dataset (Motion-X, a custom one): HumanML3D's names, so a user who copied the released runs there finds
  them.

A command's config declares these fields with default None and resolves them with :func:`with_run_defaults` (a new
config); library code calls :func:`default_run_name`.
"""
from __future__ import annotations

from typing import Any

KINDS = ("vq", "mask", "res", "len")

RUN_NAMES: dict[str, dict[str, str]] = {
    "HumanML3D": {"vq": "rvq_nq6_dc512_nc512_noshare_qdp0.2",
                  "mask": "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns",
                  "res": "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw",
                  "len": "length_estimator"},
    "KIT-ML": {"vq": "rvq_nq6_dc512_nc512_noshare_qdp0.2_k",
               "mask": "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns_k",
               "res": "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw_k",
               "len": "length_estimator"},
    "synth": {"vq": "rvq_tiny", "mask": "t2m_tiny", "res": "tres_tiny", "len": "length_estimator"},
}
FALLBACK = "HumanML3D"

# Dataset names as typed on a command line -> the table's key (case-insensitive). They mirror the dataset specs'
# aliases (tests/test_run_names.py checks that); this layer cannot import src.data.
_ALIASES = {"humanml3d": "HumanML3D", "t2m": "HumanML3D", "kit-ml": "KIT-ML", "kit": "KIT-ML", "synth": "synth"}


def table_key(dataset_name: str | None) -> str:
    """The table row used for ``dataset_name`` (HumanML3D's for a dataset without its own row)."""
    return _ALIASES.get(str(dataset_name or "").lower(), FALLBACK)


def default_run_name(dataset_name: str | None, kind: str) -> str:
    """Default run folder of ``kind`` (vq, mask, res, len) for ``dataset_name``."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r} (one of {', '.join(KINDS)})")
    return RUN_NAMES[table_key(dataset_name)][kind]


def with_run_defaults(cfg: Any, dataset_name: str | None, **fields: str) -> Any:
    """A copy of config dataclass ``cfg`` whose run-name fields that are None take the dataset's default of their
    kind, e.g. ``with_run_defaults(cfg, cfg.dataset_name, trans_name="mask", res_name="res")``."""
    import dataclasses

    return dataclasses.replace(cfg, **{name: default_run_name(dataset_name, kind) for name, kind in fields.items()
                                       if getattr(cfg, name) is None})


def help_default(kind: str) -> str:
    """Help-text tail naming where the default comes from."""
    return (f"default: the dataset's {kind} run from src/common/run_names.py, HumanML3D "
            f"{RUN_NAMES['HumanML3D'][kind]}, synth {RUN_NAMES['synth'][kind]}")
