"""TMR text-motion retrieval: ACTOR-style VAE encoders, decoder, contrastive loss, strict run-dir loading."""
from .config import DecoderConfig, EncoderConfig, TMRConfig
from .load import load_state_dict_strict, load_tmr, manifest_mismatch, read_run_config, state_dict_mismatch
from .losses import cosine_sim_matrix, info_nce_with_filtering, kl_loss, negative_filter_mask
from .model import MODULE_NAMES, TMR, get_score_matrix, get_sim_matrix, lengths_to_mask
from .modules import ACTORStyleDecoder, ACTORStyleEncoder, BatchFirstPositionalEncoding
from .text import LocalTextModel, collate_token_features, slice_token_features

__all__ = [
    "MODULE_NAMES",
    "TMR",
    "ACTORStyleDecoder",
    "ACTORStyleEncoder",
    "BatchFirstPositionalEncoding",
    "DecoderConfig",
    "EncoderConfig",
    "LocalTextModel",
    "TMRConfig",
    "collate_token_features",
    "cosine_sim_matrix",
    "get_score_matrix",
    "get_sim_matrix",
    "info_nce_with_filtering",
    "kl_loss",
    "lengths_to_mask",
    "load_state_dict_strict",
    "load_tmr",
    "manifest_mismatch",
    "negative_filter_mask",
    "read_run_config",
    "slice_token_features",
    "state_dict_mismatch",
]
