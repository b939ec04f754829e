"""ACTOR-style sequence encoder and decoder used by TMR (key names match upstream's state_dicts)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import DecoderConfig, EncoderConfig


class BatchFirstPositionalEncoding(nn.Module):
    """Sinusoidal PE added to ``(B, T, D)`` then dropout; the table is a non-persistent buffer (never in checkpoints)."""

    def __init__(self, *, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


class ACTORStyleEncoder(nn.Module):
    """Project features, prepend learned mu/logvar tokens, run a post-norm encoder, return the token outputs."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.nfeats = config.nfeats
        self.vae = config.vae
        self.nbtokens = 2 if config.vae else 1
        d = config.latent_dim
        self.projection = nn.Linear(config.nfeats, d)
        # (nbtokens, D) with no batch dim: that is how upstream stores it.
        self.tokens = nn.Parameter(torch.randn(self.nbtokens, d))
        self.sequence_pos_encoding = BatchFirstPositionalEncoding(d_model=d, dropout=config.dropout)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=config.num_heads, dim_feedforward=config.ff_size,
                                           dropout=config.dropout, activation=config.activation, batch_first=True)
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers=config.num_layers)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, nfeats), mask (B, T) True = valid frame -> (B, nbtokens, D): token 0 = mu, token 1 = logvar."""
        h = self.projection(x)
        bs = h.shape[0]
        tokens = self.tokens[None].expand(bs, -1, -1).to(h.dtype)
        seq = self.sequence_pos_encoding(torch.cat((tokens, h), dim=1))
        token_mask = torch.ones(bs, self.nbtokens, dtype=torch.bool, device=mask.device)
        aug_mask = torch.cat((token_mask, mask.bool()), dim=1)
        out = self.seqTransEncoder(seq, src_key_padding_mask=~aug_mask)
        return out[:, : self.nbtokens]


class ACTORStyleDecoder(nn.Module):
    """Decode one latent vector into a motion: zero+PE queries per frame attend to the latent as memory."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.nfeats = config.nfeats
        d = config.latent_dim
        self.sequence_pos_encoding = BatchFirstPositionalEncoding(d_model=d, dropout=config.dropout)
        layer = nn.TransformerDecoderLayer(d_model=d, nhead=config.num_heads, dim_feedforward=config.ff_size,
                                           dropout=config.dropout, activation=config.activation, batch_first=True)
        self.seqTransDecoder = nn.TransformerDecoder(layer, num_layers=config.num_layers)
        self.final_layer = nn.Linear(d, config.nfeats)

    def forward(self, z: Tensor, mask: Tensor) -> Tensor:
        """z (B, D), mask (B, T) True = valid -> (B, T, nfeats) with padded frames set to 0."""
        bs, nframes = mask.shape
        queries = self.sequence_pos_encoding(torch.zeros(bs, nframes, z.shape[-1], dtype=z.dtype, device=z.device))
        out = self.seqTransDecoder(tgt=queries, memory=z[:, None], tgt_key_padding_mask=~mask.bool())
        out = self.final_layer(out)
        # Padded frames are zeroed (not multiplied) so NaNs from fully masked rows cannot leak.
        return out.masked_fill(~mask.bool()[..., None], 0.0)
