"""Typed run configs that read and write upstream's opt.txt format."""
from .base import OptConfig, convert_value
from .momask import TEXT_ENCODERS, LenEstConfig, MaskTransConfig, ResTransConfig, VQConfig
from .opt_txt import FOOTER, HEADER, format_opt_text, parse_opt_text, read_opt_file

__all__ = [
           "FOOTER",
           "HEADER",
           "TEXT_ENCODERS",
           "LenEstConfig",
           "MaskTransConfig",
           "OptConfig",
           "ResTransConfig",
           "VQConfig",
           "convert_value",
           "format_opt_text",
           "parse_opt_text",
           "read_opt_file",
]
