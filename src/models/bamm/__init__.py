"""BAMM: bidirectional autoregressive masked transformer on MoMask's VQ tokens, with strict checkpoint loading."""
from .config import BAMMConfig, BAMMTransConfig
from .load import checkpoint_state, load_bamm, load_bamm_run, manifest_mismatch
from .model import BAMMTransformer

__all__ = ["BAMMConfig", "BAMMTransConfig", "BAMMTransformer", "checkpoint_state", "load_bamm", "load_bamm_run",
           "manifest_mismatch"]
