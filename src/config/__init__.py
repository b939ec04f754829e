"""Typed run configs that read and write upstream's opt.txt format."""
from .base import OptConfig, convert_value
from .momask import TEXT_ENCODERS, LenEstConfig, MaskTransConfig, ResTransConfig, VQConfig
from .opt_txt import FOOTER, HEADER, format_opt_text, parse_opt_text, read_opt_file

__all__ = ["OptConfig", "convert_value", "VQConfig", "MaskTransConfig", "ResTransConfig", "LenEstConfig",
           "TEXT_ENCODERS", "HEADER", "FOOTER", "parse_opt_text", "format_opt_text", "read_opt_file"]
