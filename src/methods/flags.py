"""The flags every edit method's CLI shares: the dataset, the concept, and the NEW run the edit is saved as.

Device and location flags come from src/config/flags.py (``add_device_flags``, ``add_location_flags``).
"""
from __future__ import annotations

import argparse


def method_parser(prog: str, doc: str, *, concept_help: str, name_help: str,
                  name_flags: tuple[str, ...] = ("--name", "--out_name")):
    """-> (parser, its "models" group) with ``--dataset_name``, ``--concept`` (alias ``--split_name``) and the required
    ``--name`` (alias ``--out_name``; ``name_flags`` replaces both); ``--help`` shows each default once."""
    from src.config.flags import HelpFormatter

    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0], formatter_class=HelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--dataset_name", default="synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    g.add_argument("--concept", "--split_name", dest="concept", default="violence", help=concept_help)
    g.add_argument(*name_flags, dest="name", required=True, help=name_help)
    return p, g
