"""MoMask masked transformer (base code layer) and residual transformer (layers 1..Q-1).

Both take text *features* (B, clip_dim) from a separate text encoder (src/models/text_encoders.py); no CLIP
lives inside, so state dicts hold no ``clip_model.*`` keys. Keys and shapes match upstream
``models/mask_transformer/transformer.py`` (``position_enc.pe`` is a persistent buffer, as upstream).
Sequences are seq-first (T, B, D) inside the encoder, post-norm GELU layers, as upstream.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.common.modes import eval_mode

from .tools import (
    cal_performance,
    categorical_sample,
    cosine_schedule,
    decode_start,
    gumbel_sample,
    lengths_to_mask,
    mask_subset,
    q_schedule,
    remask,
    top_k,
)
from .vq import _init_weights

# Classifier-free guidance's conditional and unconditional passes as ONE forward of a doubled batch (as BAMM and
# upstream's BAMM do) instead of two: one pass of 2B rows is faster than two of B. A doubled batch may round
# differently in the last bits, so sampled ids could differ from the two-pass MoMask in a near-tie;
# tests/test_generate_parity.py holds this path to upstream (ids equal, logits 1e-5). The one switch is the
# ``cfg_batch`` argument of forward_with_cond_scale/generate (and of src.gen.generate's generators); this is its
# default.
CFG_BATCH = True


class InputProcess(nn.Module):
    """(B, T, input_feats) -> (T, B, latent_dim)."""

    def __init__(self, *, input_feats: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(input_feats, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.poseEmbedding(x.permute(1, 0, 2))


class PositionalEncoding(nn.Module):
    """Sinusoidal table ``pe`` (max_len, 1, d_model), added to seq-first input, then dropout."""

    def __init__(self, *, d_model: int, dropout: float, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.shape[0]])


class OutputProcess(nn.Module):
    """(T, B, latent) -> dense, GELU, LayerNorm, linear -> (B, out_feats, T)."""

    def __init__(self, *, out_feats: int, latent_dim: int):
        super().__init__()
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_feats)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.poseFinal(self.LayerNorm(F.gelu(self.dense(h)))).permute(1, 2, 0)


def _encoder(*, latent_dim: int, num_heads: int, ff_size: int, dropout: float, num_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=latent_dim, nhead=num_heads, dim_feedforward=ff_size,
                                       dropout=dropout, activation="gelu")
    return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)


class _CondMixin:
    cond_drop_prob: float
    training: bool

    def mask_cond(self, cond: torch.Tensor, force_mask: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Zero the condition (force_mask), or, in training, drop it per sample with cond_drop_prob (for CFG)."""
        if force_mask:
            return torch.zeros_like(cond)
        if self.training and self.cond_drop_prob > 0.0:
            drop = torch.rand((cond.shape[0], 1), generator=generator, device=cond.device) < self.cond_drop_prob
            return cond * (~drop).to(cond.dtype)
        return cond


class MaskTransformer(_CondMixin, nn.Module):
    """Text-conditioned masked token model over the first VQ layer. Tokens 0..num_tokens-1, mask_id, pad_id."""

    def __init__(self, *, code_dim: int, num_tokens: int, latent_dim: int, ff_size: int, num_layers: int,
                 num_heads: int, dropout: float, clip_dim: int, cond_drop_prob: float, max_len: int = 5000):
        super().__init__()
        self.code_dim, self.latent_dim, self.clip_dim = code_dim, latent_dim, clip_dim
        self.num_tokens = num_tokens
        self.mask_id = num_tokens
        self.pad_id = num_tokens + 1
        self.cond_drop_prob = cond_drop_prob
        self.input_process = InputProcess(input_feats=code_dim, latent_dim=latent_dim)
        self.position_enc = PositionalEncoding(d_model=latent_dim, dropout=dropout, max_len=max_len)
        self.seqTransEncoder = _encoder(latent_dim=latent_dim, num_heads=num_heads, ff_size=ff_size,
                                        dropout=dropout, num_layers=num_layers)
        self.cond_emb = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(out_feats=num_tokens, latent_dim=latent_dim)
        self.token_emb = nn.Embedding(num_tokens + 2, code_dim)  # + mask and pad rows
        self.apply(_init_weights)

    def load_and_freeze_token_emb(self, codebook: torch.Tensor) -> None:
        """Use the VQ's first codebook (nb_code, code_dim) as frozen token embedding (mask/pad rows zero)."""
        weight = torch.cat([codebook, codebook.new_zeros(2, codebook.shape[1])], dim=0)
        self.token_emb.weight = nn.Parameter(weight, requires_grad=False)

    def trans_forward(self, motion_ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor,
                      force_mask: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """ids (B, T), text features (B, clip_dim), padding_mask (B, T) True=pad -> logits (B, num_tokens, T)."""
        cond = self.mask_cond(cond, force_mask=force_mask, generator=generator)
        x = self.position_enc(self.input_process(self.token_emb(motion_ids)))
        xseq = torch.cat([self.cond_emb(cond).unsqueeze(0), x], dim=0)
        pad = torch.cat([torch.zeros_like(padding_mask[:, :1]), padding_mask], dim=1)
        out = self.seqTransEncoder(xseq, src_key_padding_mask=pad)[1:]
        return self.output_process(out)

    def forward_with_cond_scale(self, motion_ids: torch.Tensor, cond_vector: torch.Tensor,
                                padding_mask: torch.Tensor, cond_scale: float = 3, force_mask: bool = False,
                                cfg_batch: bool = CFG_BATCH):
        """Classifier-free guidance: uncond + (cond - uncond) * cond_scale.

        ``cfg_batch``: the conditional and unconditional passes as one forward of the doubled batch (zeroed
        condition in the second half) instead of two forwards, as upstream does them.
        """
        if force_mask:
            return self.trans_forward(motion_ids, cond_vector, padding_mask, force_mask=True)
        if cond_scale != 1 and cfg_batch and not self.training:
            both = self.trans_forward(torch.cat([motion_ids, motion_ids]),
                                      torch.cat([cond_vector, torch.zeros_like(cond_vector)]),
                                      torch.cat([padding_mask, padding_mask]))
            logits, aux = both.chunk(2)
            return aux + (logits - aux) * cond_scale
        logits = self.trans_forward(motion_ids, cond_vector, padding_mask)
        if cond_scale == 1:
            return logits
        aux = self.trans_forward(motion_ids, cond_vector, padding_mask, force_mask=True)
        return aux + (logits - aux) * cond_scale

    def forward(self, ids: torch.Tensor, cond_vector: torch.Tensor, m_lens: torch.Tensor,
                generator: torch.Generator | None = None):
        """Training loss on code ids (B, T) with lengths (B,) -> (cross-entropy, predicted ids (B, T), accuracy).

        A cosine-scheduled fraction of each sequence is the target; of it 10% becomes a random token,
        then 88% of the rest the mask token (BERT-style), the remainder stays as is.
        """
        bs, n = ids.shape
        device = ids.device
        non_pad = lengths_to_mask(m_lens, n)
        ids = torch.where(non_pad, ids, self.pad_id)
        t = torch.rand((bs,), generator=generator, device=device)
        num_masked = (n * cosine_schedule(t)).round().clamp(min=1)
        order = torch.rand((bs, n), generator=generator, device=device).argsort(dim=-1)
        mask = (order < num_masked.unsqueeze(-1)) & non_pad
        labels = torch.where(mask, ids, self.mask_id)
        x_ids = ids.clone()
        mask_rid = mask_subset(mask, 0.1, generator)
        rand_id = torch.randint(0, self.num_tokens, x_ids.shape, generator=generator, device=device)
        x_ids = torch.where(mask_rid, rand_id, x_ids)
        mask_mid = mask_subset(mask & ~mask_rid, 0.88, generator)
        x_ids = torch.where(mask_mid, self.mask_id, x_ids)
        logits = self.trans_forward(x_ids, cond_vector, ~non_pad, generator=generator)
        return cal_performance(logits, labels, ignore_index=self.mask_id)

    @torch.no_grad()
    def generate(self, cond_vector: torch.Tensor, m_lens: torch.Tensor, *, timesteps: int, cond_scale: float,
                 temperature: float = 1.0, topk_filter_thres: float = 0.9, gsample: bool = False,
                 force_mask: bool = False, generator: torch.Generator | None = None,
                 cfg_batch: bool = CFG_BATCH) -> torch.Tensor:
        """Iterative decoding from all-mask: text features (B, clip_dim), token lengths (B,) -> ids (B, max len), -1 at pads.

        At each of ``timesteps`` steps the cos-scheduled number of lowest-confidence tokens is re-masked and
        re-predicted (top-k filtered, multinomial or Gumbel sampling).
        """
        with eval_mode(self):
            device = cond_vector.device
            m_lens, padding_mask, ids, scores = decode_start(m_lens, pad_id=self.pad_id, mask_id=self.mask_id,
                                                             device=device)
            for timestep in torch.linspace(0, 1, timesteps, device=device):
                is_mask = remask(scores, m_lens, timestep)
                ids = torch.where(is_mask, self.mask_id, ids)
                logits = self.forward_with_cond_scale(ids, cond_vector, padding_mask, cond_scale=cond_scale,
                                                      force_mask=force_mask, cfg_batch=cfg_batch).permute(0, 2, 1)
                filtered = top_k(logits, topk_filter_thres, dim=-1)
                if gsample:
                    pred = gumbel_sample(filtered, temperature=temperature, dim=-1, generator=generator)
                else:
                    pred = categorical_sample(F.softmax(filtered / temperature, dim=-1), generator)
                ids = torch.where(is_mask, pred, ids)
                scores = logits.softmax(dim=-1).gather(2, pred.unsqueeze(-1)).squeeze(-1)
                scores = scores.masked_fill(~is_mask, 1e5)  # kept tokens and pads are never re-masked
            return torch.where(padding_mask, -1, ids)


class ResidualTransformer(_CondMixin, nn.Module):
    """Predicts VQ layer q (1..Q-1) from the sum of embeddings of layers < q, the text and a layer id.

    Token/projection weights: with ``share_weight`` the projection of layer q and the embedding of layer q+1
    share ``embed_proj_shared_weight`` (Q-2 tables), plus ``token_embed_weight_`` (layer 0) and
    ``output_proj_weight_`` (last layer); without it, separate ``token_embed_weight``/``output_proj_weight``
    (Q-1 tables) and ``output_proj_bias``. Each table has num_tokens + 1 rows (pad_id = num_tokens).
    """

    def __init__(self, *, code_dim: int, num_tokens: int, num_quantizers: int, latent_dim: int, ff_size: int,
                 num_layers: int, num_heads: int, dropout: float, clip_dim: int, cond_drop_prob: float,
                 share_weight: bool = False, shared_codebook: bool = False, max_len: int = 5000):
        super().__init__()
        if shared_codebook:
            # upstream builds these weights as plain (unregistered) tensors, so no checkpoint can hold them
            raise ValueError("ResidualTransformer with a shared VQ codebook is not supported "
                             "(upstream never saves its token weights)")
        if num_quantizers < 2:
            raise ValueError("ResidualTransformer needs num_quantizers >= 2")
        self.code_dim, self.latent_dim, self.clip_dim = code_dim, latent_dim, clip_dim
        self.num_tokens, self.num_quantizers = num_tokens, num_quantizers
        self.pad_id = num_tokens
        self.cond_drop_prob = cond_drop_prob
        self.share_weight, self.shared_codebook = share_weight, shared_codebook
        self.input_process = InputProcess(input_feats=code_dim, latent_dim=latent_dim)
        self.position_enc = PositionalEncoding(d_model=latent_dim, dropout=dropout, max_len=max_len)
        self.seqTransEncoder = _encoder(latent_dim=latent_dim, num_heads=num_heads, ff_size=ff_size,
                                        dropout=dropout, num_layers=num_layers)
        self.quant_emb = nn.Linear(num_quantizers, latent_dim)
        self.cond_emb = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(out_feats=code_dim, latent_dim=latent_dim)
        ntok = num_tokens + 1

        def table(n: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(n, ntok, code_dim) * 0.02)

        if share_weight:
            self.embed_proj_shared_weight = table(num_quantizers - 2)
            self.token_embed_weight_ = table(1)
            self.output_proj_weight_ = table(1)
            self.output_proj_bias = None
        else:
            self.output_proj_weight = table(num_quantizers - 1)
            self.output_proj_bias = nn.Parameter(torch.zeros(num_quantizers, ntok))
            self.token_embed_weight = table(num_quantizers - 1)
        self.apply(_init_weights)

    def process_embed_proj_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(token embedding tables, output projection tables), each (Q-1, num_tokens+1, code_dim)."""
        if self.share_weight:
            token = torch.cat([self.token_embed_weight_, self.embed_proj_shared_weight], dim=0)
            proj = torch.cat([self.embed_proj_shared_weight, self.output_proj_weight_], dim=0)
            return token, proj
        return self.token_embed_weight, self.output_proj_weight

    def output_project(self, h: torch.Tensor, qids: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """(B, code_dim, T) features, table index (B,) -> logits (B, num_tokens+1, T).

        ``table``: every sample uses this one table (generation): one broadcast matmul instead of upstream's
        per-sample gathered copy of the table (``proj[qids]``, B x (num_tokens+1) x code_dim) and einsum.
        """
        if table is not None:
            proj = self.output_proj_weight_[0] if self.share_weight and table == self.num_quantizers - 2 else (
                self.embed_proj_shared_weight[table] if self.share_weight else self.output_proj_weight[table])
            out = torch.matmul(proj, h)
            if self.output_proj_bias is not None:
                out = 2 * out + self.output_proj_bias[table].unsqueeze(-1)  # upstream's 2*W.h + bias, see below
            return out
        _, proj = self.process_embed_proj_weight()
        out = torch.einsum("bnc,bcs->bns", proj[qids], h)
        if self.output_proj_bias is not None:
            # upstream computes `output += output + bias`, i.e. 2*W.h + bias; released non-shared weights
            # were trained that way, so it is kept for parity
            out = 2 * out + self.output_proj_bias[qids].unsqueeze(-1)
        return out

    def trans_forward(self, motion_codes: torch.Tensor, qids: torch.Tensor, cond: torch.Tensor,
                      padding_mask: torch.Tensor, force_mask: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """history (B, T, code_dim), layer ids (B,), text (B, clip_dim), pad mask (B, T) -> (B, code_dim, T)."""
        cond = self.mask_cond(cond, force_mask=force_mask, generator=generator)
        x = self.input_process(motion_codes)
        q_onehot = F.one_hot(qids, num_classes=self.num_quantizers).to(x.dtype)
        q_emb = self.quant_emb(q_onehot).unsqueeze(0)
        x = self.position_enc(x)
        xseq = torch.cat([self.cond_emb(cond).unsqueeze(0), q_emb, x], dim=0)
        pad = torch.cat([padding_mask.new_zeros(padding_mask.shape[0], 2), padding_mask], dim=1)  # cond + layer tokens
        out = self.seqTransEncoder(xseq, src_key_padding_mask=pad)[2:]
        return self.output_process(out)

    def forward_with_cond_scale(self, motion_codes: torch.Tensor, q_id: int, cond_vector: torch.Tensor,
                                padding_mask: torch.Tensor, cond_scale: float = 3, force_mask: bool = False,
                                cfg_batch: bool = CFG_BATCH):
        """Logits (B, num_tokens+1, T) for layer ``q_id`` with classifier-free guidance (``cfg_batch``: both passes
        as one forward of the doubled batch, see :meth:`MaskTransformer.forward_with_cond_scale`, and one projection
        table for all, see :meth:`output_project`)."""
        qids = torch.full((motion_codes.shape[0],), q_id, dtype=torch.long, device=motion_codes.device)
        if force_mask:
            return self.output_project(self.trans_forward(motion_codes, qids, cond_vector, padding_mask, True),
                                       qids - 1)
        if cond_scale != 1 and cfg_batch and not self.training:
            q2 = torch.cat([qids, qids])
            both = self.output_project(self.trans_forward(torch.cat([motion_codes, motion_codes]), q2,
                                                          torch.cat([cond_vector, torch.zeros_like(cond_vector)]),
                                                          torch.cat([padding_mask, padding_mask])), q2 - 1,
                                       table=q_id - 1)
            logits, aux = both.chunk(2)
            return aux + (logits - aux) * cond_scale
        logits = self.output_project(self.trans_forward(motion_codes, qids, cond_vector, padding_mask), qids - 1)
        if cond_scale == 1:
            return logits
        aux = self.output_project(self.trans_forward(motion_codes, qids, cond_vector, padding_mask, True), qids - 1)
        return aux + (logits - aux) * cond_scale

    def history_sum(self, all_ids: torch.Tensor, q: int) -> torch.Tensor:
        """Sum of embeddings of layers 0..q-1: ids (B, T, >=q) -> (B, T, code_dim)."""
        token, _ = self.process_embed_proj_weight()
        return sum(token[j][all_ids[..., j]] for j in range(q))

    def forward(self, all_indices: torch.Tensor, cond_vector: torch.Tensor, m_lens: torch.Tensor,
                generator: torch.Generator | None = None):
        """Training loss: ids (B, T, Q), text (B, clip_dim), lengths (B,) -> (cross-entropy, pred ids, accuracy)."""
        bs, n, nq = all_indices.shape
        device = all_indices.device
        token, _ = self.process_embed_proj_weight()
        non_pad = lengths_to_mask(m_lens, n)
        all_indices = torch.where(non_pad.unsqueeze(-1), all_indices, self.pad_id)
        active = q_schedule(bs, low=1, high=nq, device=device, generator=generator)
        # cumulative embedding sums of layers 0..q-1 for every q
        codes = torch.stack([token[j][all_indices[..., j]] for j in range(nq - 1)], dim=-1)  # (B, T, D, Q-1)
        cumsum = codes.cumsum(dim=-1)
        ar = torch.arange(bs, device=device)
        history = cumsum[ar, :, :, active - 1]
        targets = all_indices[ar, :, active]
        logits = self.trans_forward(history, active, cond_vector, ~non_pad, generator=generator)
        logits = self.output_project(logits, active - 1)
        return cal_performance(logits, targets, ignore_index=self.pad_id)

    @torch.no_grad()
    def generate(self, motion_ids: torch.Tensor, cond_vector: torch.Tensor, m_lens: torch.Tensor, *,
                 temperature: float = 1.0, topk_filter_thres: float = 0.9, cond_scale: float = 2,
                 num_res_layers: int = -1, generator: torch.Generator | None = None,
                 cfg_batch: bool = CFG_BATCH) -> torch.Tensor:
        """Base ids (B, T) (-1 or anything at pads) -> all ids (B, T, Q') with -1 at pads (Q' = Q by default)."""
        with eval_mode(self):
            token, _ = self.process_embed_proj_weight()
            seq_len = motion_ids.shape[1]
            padding_mask = ~lengths_to_mask(m_lens.to(motion_ids.device), seq_len)
            ids = torch.where(padding_mask, self.pad_id, motion_ids)
            all_ids = [ids]
            history = 0
            n_layers = self.num_quantizers if num_res_layers == -1 else num_res_layers + 1
            for q in range(1, n_layers):
                history = history + token[q - 1][ids]
                logits = self.forward_with_cond_scale(history, q, cond_vector, padding_mask, cond_scale=cond_scale,
                                                      cfg_batch=cfg_batch)
                filtered = top_k(logits.permute(0, 2, 1), topk_filter_thres, dim=-1)
                pred = gumbel_sample(filtered, temperature=temperature, dim=-1, generator=generator)
                ids = torch.where(padding_mask, self.pad_id, pred)
                all_ids.append(ids)
            out = torch.stack(all_ids, dim=-1)
            return torch.where(out == self.pad_id, -1, out)
