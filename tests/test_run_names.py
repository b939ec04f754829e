"""Default run names: one table (src/common/run_names.py), HumanML3D's equal to the released runs named in the
upstream fixture manifests, synth's equal to the quickstart's, and every CLI resolves its defaults through it."""
from __future__ import annotations

import re

import pytest

from src.common import run_names as RN

# (CLI module, argv needed to get past argparse, {flag: kind}) for every CLI with a run-name default
CLIS = [
    ("src.eval.t2m_unlearn", [], {"name": "mask", "res_name": "res"}),
    ("src.methods.uce", ["--name", "out"], {"trans_name": "mask", "res_name": "res"}),
    ("src.methods.rece", ["--name", "out"], {"trans_name": "mask", "res_name": "res"}),
    ("src.methods.finetune", ["--name", "out"], {"trans_name": "mask", "res_name": "res"}),
    ("src.methods.lcr", ["--name", "out"], {"vq_name": "vq"}),
    ("src.eval.attack", ["--models", "a=foo"], {"res_name": "res"}),
]


def _released(fixtures) -> dict[str, str]:
    """kind -> run name, read from the opt.txt files upstream's option code wrote and the length estimator's
    manifest (its released path)."""
    man = fixtures / "momask" / "manifests"
    if not man.is_dir():
        pytest.skip("no momask manifests")
    out = {}
    for kind, stem in (("vq", "vq_opt"), ("mask", "mtrans_opt"), ("res", "rtrans_opt")):
        names = re.findall(r"^name: (\S+)$", (man / f"{stem}.txt").read_text(), flags=re.M)
        assert len(names) == 1, stem
        out[kind] = names[0]
    m = re.search(r"checkpoints/t2m/([^/]+)/model/finest\.tar", (man / "len_est.json").read_text())
    assert m, "len_est.json names no released path"
    out["len"] = m.group(1)
    return out


@pytest.mark.parametrize("alias", ["HumanML3D", "t2m", "humanml3d", "T2M"])
def test_humanml3d_defaults_are_the_released_runs(fixtures, alias):
    released = _released(fixtures)
    assert released["res"].endswith("_sw")  # the released residual run shares weights
    for kind in RN.KINDS:
        assert RN.default_run_name(alias, kind) == released[kind], kind


def test_synth_defaults_are_the_quickstart_runs():
    from src.quickstart import LEN, RES, TRANS, VQ

    want = {"vq": VQ, "mask": TRANS, "res": RES, "len": LEN}
    for kind in RN.KINDS:
        assert RN.default_run_name("synth", kind) == want[kind]
    assert set(want.values()).isdisjoint(RN.RUN_NAMES["HumanML3D"][k] for k in ("vq", "mask", "res"))


def test_aliases_agree_with_the_dataset_specs():
    """The table's own alias map (common cannot import src.data) must send every spelling the dataset specs accept
    to that dataset's row; datasets without a row fall back to HumanML3D's names."""
    from src.common.datasets import SPECS, get_spec

    for spec in SPECS.values():
        for name in (spec.name, *spec.aliases):
            key = RN.table_key(name)
            assert key == (spec.name if spec.name in RN.RUN_NAMES else RN.FALLBACK), name
    assert get_spec("synth").name in RN.RUN_NAMES
    assert RN.table_key("Motion-X") == RN.FALLBACK
    with pytest.raises(ValueError):
        RN.default_run_name("synth", "bogus")


class _Stop(BaseException):
    """Raised right after the CLI filled its defaults (BaseException: the CLI boundary does not turn it into a line)."""


def _spy(monkeypatch, module):
    """Stop the CLI where it resolves its run names: a typed config's ``with_run_defaults`` (a new config);
    ``seen["args"]`` is the resolved result."""
    seen = {}

    def spy(args, dataset_name, **flags):
        args = RN.with_run_defaults(args, dataset_name, **flags)
        seen.update(args=args, dataset=dataset_name, flags=flags)
        raise _Stop

    monkeypatch.setattr(module, "with_run_defaults", spy, raising=False)
    return seen


@pytest.mark.parametrize("module_name,argv,flags", CLIS, ids=[c[0] for c in CLIS])
@pytest.mark.parametrize("dataset", ["synth", "HumanML3D", "t2m"])
def test_cli_defaults_come_from_the_table(monkeypatch, module_name, argv, flags, dataset, tmp_path):
    """Each CLI's run-name flags default to None in argparse and are resolved from --dataset_name before any work;
    an explicit value is kept."""
    import importlib

    # the module whose with_run_defaults the CLI calls, and the CLI's main
    impl = {"src.methods.uce": "src.methods.text_edit", "src.methods.rece": "src.methods.text_edit",
            "src.methods.lcr": "src.methods.lcr.__main__", "src.eval.attack": "src.attacks.__main__"}.get(module_name,
                                                                                                   module_name)
    module = importlib.import_module(impl)
    if impl == "src.methods.text_edit":
        main = module.cli_main(module_name.rsplit(".", 1)[1])
    else:
        main = module.main
    base = [*argv, "--dataset_name", dataset, "--checkpoints_dir", str(tmp_path / "ck"),
            "--dataset_dir", str(tmp_path / "ds")] if "attack" not in module_name else [*argv, "--dataset_name", dataset]
    if hasattr(module, "parse"):  # a typed command: its config resolves the defaults (main: parse(argv).resolved())
        cfg = module.parse(base).resolved()
        for flag, kind in flags.items():
            assert getattr(cfg, flag) == RN.default_run_name(dataset, kind) == RN.RUN_NAMES[RN.table_key(dataset)][kind]
        flag = next(iter(flags))
        assert getattr(module.parse([*base, f"--{flag}", "mine"]).resolved(), flag) == "mine"
        return
    seen = _spy(monkeypatch, module)
    with pytest.raises(_Stop):
        main(base)
    assert seen["flags"] == flags
    for flag, kind in flags.items():
        assert getattr(seen["args"], flag) == RN.default_run_name(dataset, kind), flag
    if dataset == "synth":
        assert all(getattr(seen["args"], f) == RN.RUN_NAMES["synth"][k] for f, k in flags.items())
    # an explicit name wins
    flag = next(iter(flags))
    seen = _spy(monkeypatch, module)
    with pytest.raises(_Stop):
        main([*base, f"--{flag}", "mine"])
    assert getattr(seen["args"], flag) == "mine"


@pytest.mark.parametrize("dataset", ["synth", "HumanML3D"])
def test_pipeline_plan_uses_the_table(dataset):
    from src.methods.pipeline import parse_pipeline, plan

    for method in ("lcr", "rece_uce", "finetune", "retrain"):
        args, rest = parse_pipeline([method, "violence", dataset])
        argvs = [a for _, a in plan(args, rest)]
        names = RN.RUN_NAMES[RN.table_key(dataset)]
        flat = [x for a in argvs for x in a]
        used = {n for n in (names["vq"], names["mask"], names["res"]) if n in flat}
        assert used, method
        other = RN.RUN_NAMES["HumanML3D" if dataset == "synth" else "synth"]
        assert not {other["vq"], other["mask"], other["res"]} & set(flat), method
        for a in argvs:
            for flag, kind in (("--trans_name", "mask"), ("--res_name", "res"), ("--like_res", "res")):
                if flag in a and a[a.index(flag) + 1] in (names[kind], other[kind]):
                    assert a[a.index(flag) + 1] == names[kind], (method, flag)
