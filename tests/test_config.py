"""opt.txt configs: byte-identical round trip of upstream files, typed conversion, unknown keys kept."""
from __future__ import annotations

import pytest

from src.common.errors import HmuError
from src.config import FOOTER, HEADER, LenEstConfig, MaskTransConfig, ResTransConfig, VQConfig, parse_opt_text


def _opt_files(fixtures):
    root = fixtures / "momask"
    files = sorted(root.glob("manifests/*_opt.txt")) + sorted(root.glob("tiny/checkpoints/*/*/opt.txt"))
    if not files:
        pytest.skip("no opt.txt fixtures")
    return files


def _config_class(raw: dict):
    if "nb_code" in raw:
        return VQConfig
    return ResTransConfig if raw.get("share_weight") == "True" else MaskTransConfig


def test_upstream_opt_files_round_trip_byte_identically(fixtures, tmp_path):
    for f in _opt_files(fixtures):
        text = f.read_text()
        raw = parse_opt_text(text, str(f))
        for cls in (VQConfig, MaskTransConfig, ResTransConfig, LenEstConfig, _config_class(raw)):
            cfg = cls.load(f)
            assert cfg.to_text() == text, (f, cls.__name__)
        out = tmp_path / f"{f.parent.name}_opt.txt"
        _config_class(raw).load(f).save(out)
        assert out.read_bytes() == f.read_bytes()


def test_values_convert_by_field_type(fixtures):
    for f in _opt_files(fixtures):
        raw = parse_opt_text(f.read_text(), str(f))
        cfg = _config_class(raw).load(f)
        assert cfg.extra == {k: v for k, v in raw.items() if k not in cfg.typed_fields()}
        for key, text in raw.items():
            if key not in cfg.typed_fields():
                continue
            value = getattr(cfg, key)
            if text in ("True", "False"):
                assert value is (text == "True"), key
            elif text == "None":
                assert value is None, key
            elif text.startswith("["):
                assert isinstance(value, list) and all(isinstance(v, int) for v in value), key
        assert cfg.dataset_spec.name  # t2m and friends resolve through the dataset table


def test_conversion_details_and_unknown_keys():
    text = (f"{HEADER}\nbatch_size: 8\ncode_dim: 16\nlr: 1e-05\nmilestones: [10, 20]\nmy_new_flag: hello\n"
            f"nb_code: 32\nvq_norm: None\nweight_decay: 0\n{FOOTER}\n")
    cfg = VQConfig.from_text(text)
    assert cfg.lr == 1e-05 and isinstance(cfg.lr, float)
    assert cfg.vq_norm is None and cfg.milestones == [10, 20] and cfg.nb_code == 32
    assert cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    assert cfg.extra == {"my_new_flag": "hello"}
    assert cfg.to_text() == text  # unchanged values keep their text, unknown keys stay
    changed = cfg.replace(lr=2e-4, nb_code=64)
    assert "lr: 0.0002\n" in changed.to_text() and "nb_code: 64\n" in changed.to_text()
    assert "my_new_flag: hello\n" in changed.to_text()
    assert VQConfig.from_text(changed.to_text()).nb_code == 64


def test_hmu_fields_written_for_new_files_only(fixtures):
    cfg = MaskTransConfig(name="x", dataset_name="synth", text_encoder="embedded", clip_dim=64)
    text = cfg.to_text()
    lines = text.splitlines()
    assert lines[0] == HEADER and lines[-1] == FOOTER and lines[1:-1] == sorted(lines[1:-1])
    back = MaskTransConfig.from_text(text)
    assert (back.text_encoder, back.clip_dim, back.name) == ("embedded", 64, "x")
    assert back.dataset_spec.name == "synth"
    upstream = _opt_files(fixtures)[0]
    assert "text_encoder" not in MaskTransConfig.load(upstream).to_text()
    assert MaskTransConfig.load(upstream).text_encoder == "clip"


def test_bad_files_give_one_line_errors(tmp_path):
    f = tmp_path / "opt.txt"
    with pytest.raises(HmuError, match="not found"):
        VQConfig.load(f)
    f.write_text(f"{HEADER}\nnb_code: many\n{FOOTER}\n")
    with pytest.raises(HmuError, match=r"opt.txt: nb_code"):
        VQConfig.load(f)
    f.write_text(f"{HEADER}\nnb_code: 5\n")
    with pytest.raises(HmuError, match="footer"):
        VQConfig.load(f)
    f.write_text("hello\n")
    with pytest.raises(HmuError, match="not an opt.txt"):
        VQConfig.load(f)
    f.write_text(f"{HEADER}\nshared_codebook: yes\n{FOOTER}\n")
    with pytest.raises(HmuError) as e:
        VQConfig.load(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


def test_text_encoder_field_is_checked():
    with pytest.raises(HmuError, match="text_encoder"):
        MaskTransConfig(text_encoder="bert")
    assert LenEstConfig(text_encoder="embedded").text_encoder == "embedded"


def test_transformer_sizes_have_one_home():
    """BAMM's model config and TMR's encoder/decoder configs inherit the transformer sizes (declared once, in
    src.config.sizes); MoMask's opt.txt config converts its n_layers/n_heads into them. Released defaults kept."""
    from src.config import MaskTransConfig
    from src.config.sizes import SIZE_FIELDS, TransformerSizes
    from src.models.bamm.config import BAMMConfig
    from src.models.tmr.config import DecoderConfig, EncoderConfig, TMRConfig

    for cls in (BAMMConfig, EncoderConfig, DecoderConfig):
        assert issubclass(cls, TransformerSizes)
        for klass in cls.__mro__[:cls.__mro__.index(TransformerSizes)]:
            assert not set(SIZE_FIELDS) & set(vars(klass).get("__annotations__", {})), klass  # not declared again
    tmr = TMRConfig()  # upstream TMR's released sizes, not MoMask's
    assert (tmr.motion_encoder.latent_dim, tmr.motion_encoder.num_layers, tmr.motion_encoder.num_heads,
            tmr.motion_encoder.dropout) == (256, 6, 4, 0.1)
    assert BAMMConfig(code_dim=4, num_tokens=5).size_kwargs() == dict(latent_dim=384, ff_size=1024, num_layers=8,
                                                                       num_heads=6, dropout=0.2)
    m = MaskTransConfig(n_layers=3, n_heads=2, latent_dim=16, ff_size=32, dropout=0.0)
    assert m.sizes() == TransformerSizes(latent_dim=16, ff_size=32, num_layers=3, num_heads=2, dropout=0.0)
