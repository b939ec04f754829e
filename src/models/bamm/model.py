"""BAMM (Pinyoanuntapong et al. 2024): a bidirectional autoregressive masked transformer over the first VQ layer.

It is MoMask's masked transformer with three changes, which are what parity depends on:

- The sequence is ``[cond, tokens]`` and the positional encoding is added *after* the concatenation, so the text
  token sits at position 0 (MoMask adds PE to the tokens only).
- Attention is causal (each position sees the text and earlier tokens), except that positions whose token is known
  (``cond_idx`` != pad) are visible to every position, and known positions see only known positions and the text.
  Padding masks are not used at all: padding is expressed with ``pad_id`` tokens and the END token.
- The output keeps the text position, so logits have length ``L + 1``: ``logits[..., k]`` (from position k, which
  sees the text and tokens < k) predicts token k, and there are ``num_tokens + 1`` classes (codes + END).

The building blocks (input/output projections, positional encoding, encoder stack, init, condition dropout) are
MoMask's, so state_dict keys and shapes are upstream's, and ``cond_emb`` (clip_dim -> latent) is exposed exactly as
on MoMask's ``MaskTransformer`` for the unlearning edits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.momask.tools import categorical_sample, lengths_to_mask
from src.models.momask.transformer import InputProcess, OutputProcess, PositionalEncoding, _CondMixin, _encoder
from src.models.momask.vq import _init_weights

from .config import BAMMConfig


class BAMMTransformer(_CondMixin, nn.Module):
    """Text features (B, clip_dim) + token ids (B, L) -> logits (B, num_tokens + 1, L + 1)."""

    def __init__(self, config: BAMMConfig, *, max_len: int = 5000) -> None:
        super().__init__()
        self.config = config
        self.code_dim, self.latent_dim, self.clip_dim = config.code_dim, config.latent_dim, config.clip_dim
        self.num_tokens = config.num_tokens
        self.num_heads = config.num_heads
        self.end_id, self.pad_id, self.mask_id = config.end_id, config.pad_id, config.mask_id
        self.cond_drop_prob = config.cond_drop_prob
        self.input_process = InputProcess(input_feats=config.code_dim, latent_dim=config.latent_dim)
        self.position_enc = PositionalEncoding(d_model=config.latent_dim, dropout=config.dropout, max_len=max_len)
        self.seqTransEncoder = _encoder(latent_dim=config.latent_dim, num_heads=config.num_heads,
                                        ff_size=config.ff_size, dropout=config.dropout, num_layers=config.num_layers)
        self.cond_emb = nn.Linear(config.clip_dim, config.latent_dim)
        self.output_process = OutputProcess(out_feats=config.num_tokens + 1, latent_dim=config.latent_dim)
        self.token_emb = nn.Embedding(config.num_tokens + 3, config.code_dim)  # codes + END, PAD, MASK rows
        self.apply(_init_weights)

    # ------------------------------------------------------------------ attention
    def attention_mask(self, cond_idx: Tensor | None, *, batch: int, length: int,
                       device: torch.device | None = None) -> Tensor:
        """(B*heads, L+1, L+1) bool, True = may attend; rows repeated per head with repeat_interleave (B-major).

        ``cond_idx`` (B, L) holds the known tokens and ``pad_id`` elsewhere; None gives the plain causal mask.
        """
        t = length + 1
        attn = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None].expand(batch, t, t)
        if cond_idx is not None:
            known = torch.cat([torch.ones_like(cond_idx[:, :1], dtype=torch.bool), cond_idx != self.pad_id], dim=1)
            # Known positions drop their causal row and see only known positions; everyone sees known positions.
            attn = (attn & ~known[:, :, None]) | known[:, None, :]
        return attn.repeat_interleave(self.num_heads, dim=0)

    # ------------------------------------------------------------------ forward passes
    def trans_forward(self, motion_ids: Tensor, cond: Tensor, *, force_mask: bool | None = False,
                      cond_idx: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """ids (B, L), text features (B, clip_dim) -> logits (B, num_tokens + 1, L + 1).

        ``force_mask=False``: conditional (condition randomly dropped in training); ``True``: unconditional;
        ``None`` in eval mode: the batch is doubled, conditional rows first then unconditional (as upstream, for CFG).
        """
        if self.training or force_mask is False:
            cond = self.mask_cond(cond, force_mask=False, generator=generator)
        elif force_mask:
            cond = self.mask_cond(cond, force_mask=True)
        else:
            cond = torch.cat([cond, torch.zeros_like(cond)], dim=0)
            motion_ids = motion_ids.repeat(2, 1)
            cond_idx = None if cond_idx is None else cond_idx.repeat(2, 1)
        xseq = self.cond_emb(cond)[None]  # (1, B, latent)
        if motion_ids.shape[1] > 0:
            xseq = torch.cat([xseq, self.input_process(self.token_emb(motion_ids))], dim=0)
        xseq = self.position_enc(xseq)  # after the concatenation: the text token gets position 0
        attn = self.attention_mask(cond_idx, batch=xseq.shape[1], length=xseq.shape[0] - 1, device=xseq.device)
        out = self.seqTransEncoder(xseq, mask=~attn)
        return self.output_process(out)

    def forward_with_cond_scale(self, motion_ids: Tensor, cond_vector: Tensor, *, cond_scale: float = 3,
                                force_mask: bool | None = None, cond_idx: Tensor | None = None) -> Tensor:
        """Classifier-free guidance: uncond + (cond - uncond) * cond_scale, from one doubled-batch pass."""
        if force_mask:
            return self.trans_forward(motion_ids, cond_vector, force_mask=True, cond_idx=cond_idx)
        if self.training:
            raise RuntimeError("forward_with_cond_scale needs eval mode (upstream doubles the batch only in eval)")
        logits = self.trans_forward(motion_ids, cond_vector, force_mask=None, cond_idx=cond_idx)
        cond_logits, uncond_logits = logits.chunk(2, dim=0)
        return uncond_logits + (cond_logits - uncond_logits) * cond_scale

    def forward(self, ids: Tensor, cond_vector: Tensor, m_lens: Tensor, *,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
        """Training loss on code ids (B, L) with token lengths (B,) -> (loss, predicted ids (B, L+1), accuracy).

        Targets are the ids followed by END at each length (PAD after it). With probability 1/2 a random share
        (up to 1/2) of the targets is given as known tokens (``cond_idx``); independently, up to half of the input
        tokens before END are replaced by random codes. The cross-entropy is averaged per sequence over positions
        up to and including END, then over the batch.
        """
        bs, n = ids.shape
        device = ids.device
        g = generator
        ids = torch.cat([ids, torch.full((bs, 1), self.end_id, dtype=ids.dtype, device=device)], dim=1)
        before_end = lengths_to_mask(m_lens, n + 1)
        with_end = lengths_to_mask(m_lens + 1, n + 1)
        ids = torch.where(before_end, ids, self.pad_id).scatter(-1, m_lens[:, None].long(), self.end_id)

        occurs = float(torch.rand((), generator=g, device=device)) < 0.5
        rate = float(torch.rand((), generator=g, device=device)) * 0.5 if occurs else 0.0
        known = torch.rand(ids.shape, generator=g, device=device) < rate
        cond_idx = torch.where(known & with_end, ids, self.pad_id)

        labels = ids
        p_rand = float(torch.rand((), generator=g, device=device)) * 0.5
        replace = (torch.rand(ids.shape, generator=g, device=device) < p_rand) & before_end
        rand_id = torch.randint(0, self.num_tokens, ids.shape, generator=g, device=device)
        x_ids = torch.where(replace, rand_id, ids)

        logits = self.trans_forward(x_ids, cond_vector, force_mask=False, cond_idx=cond_idx, generator=g)[..., :-1]
        weights = with_end / (with_end.sum(-1, keepdim=True) * bs)
        ce = F.cross_entropy(logits.permute(0, 2, 1)[with_end], labels[with_end], reduction="none")
        loss = (ce * weights[with_end]).sum()
        pred_id = logits.argmax(dim=1)
        keep = labels.ne(self.pad_id)
        acc = (pred_id == labels).masked_select(keep).float().mean().item() if keep.any() else 0.0
        return loss, pred_id, acc

    # ------------------------------------------------------------------ generation
    def _decode_pass(self, ids: Tensor, cond_vector: Tensor, *, seq_len: int, cond_idx: Tensor | None,
                     cond_scale: float, allow_end: bool, temperature: float,
                     generator: torch.Generator | None) -> Tensor:
        """One left-to-right pass: position k is sampled from logits[..., k] given the current ids."""
        ids = ids.clone()
        for k in range(seq_len):
            logits = self.forward_with_cond_scale(ids, cond_vector, cond_scale=cond_scale, cond_idx=cond_idx)[..., k]
            if not allow_end:
                logits = logits[:, : self.num_tokens]
            probs = F.softmax(logits / temperature, dim=-1)
            ids[:, k] = categorical_sample(probs, generator)
        return ids

    def _lengths_from_end(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """First END (or PAD) position = length; a sequence that starts with END gets one code (0) then END."""
        ids = ids.clone()
        at_first = ids[:, 0] >= self.end_id
        ids[at_first, 0] = 0
        ids[at_first, 1] = self.end_id
        is_end = ids >= self.end_id  # the last column is PAD, so every row has one
        lengths = is_end.int().argmax(dim=1)
        keep = lengths_to_mask(lengths + 1, ids.shape[1])
        return torch.where(keep, ids, self.pad_id), lengths

    @staticmethod
    def refine_mask(lengths: Tensor, width: int) -> Tensor:
        """(B, width) bool: the ``round(len / 2)`` (at least 1) valid positions pass 2 re-samples, chosen as upstream
        does: ``argsort(argsort(scores)) < n`` with score 0 at valid positions and 1e5 from the length on. All valid
        scores tie, so torch's sort decides which positions (on CPU: upstream's choice exactly)."""
        padding = ~lengths_to_mask(lengths, width)
        scores = torch.where(padding, 1e5, 0.0)
        num_masked = torch.round(0.5 * lengths).clamp(min=1)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        return ranks < num_masked.unsqueeze(-1)

    @torch.no_grad()
    def generate(self, cond_vector: Tensor, m_lens: Tensor, *, cond_scale: float = 4, refine_cond_scale: float = 3,
                 predict_length: bool = True, max_len: int | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Cascaded decoding: text features (B, clip_dim), token lengths (B,) -> (ids (B, T + 1) with -1 from each
        length on, lengths (B,)).

        ``T = max_len`` if given, else ``max(m_lens)``; upstream hard-codes 49 (HumanML3D's 196 frames / 4), which
        :class:`src.gen.BAMMGenerator` passes as ``max_len`` in both modes. The output keeps upstream's END slot
        (width T + 1, always -1 in its last column), as upstream's ``pad_when_end(generate(...))`` returns it, so the
        residual transformer draws its Gumbel noise over the same (B, T + 1, K) shape.

        Pass 1 samples positions 0..T-1 left to right (END allowed when ``predict_length``, which then sets the
        lengths; otherwise ``m_lens`` do). Pass 2 (guidance ``refine_cond_scale``, upstream's fixed 3) picks
        ``round(len / 2)`` valid positions to re-sample by upstream's ``argsort(argsort(scores))`` over equal scores,
        i.e. by torch's non-stable CPU sort (not simply the leading ones), keeps the others and END as known tokens,
        re-samples all T positions seeing the known ones, and restores the known tokens. With the global RNG seeded
        as upstream (or the same seed in ``generator``) the ids equal upstream's (CPU only).
        """
        was_training = self.training
        self.eval()
        try:
            device = cond_vector.device
            m_lens = m_lens.to(device).long()
            seq_len = int(m_lens.max()) if max_len is None else int(max_len)
            if seq_len < 1 or int(m_lens.min()) < 1 or int(m_lens.max()) > seq_len:
                raise ValueError(f"token lengths must be in [1, {seq_len}], got {m_lens.tolist()}")
            bs = cond_vector.shape[0]
            ids = torch.full((bs, seq_len + 1), self.pad_id, dtype=torch.long, device=device)
            ids = self._decode_pass(ids, cond_vector, seq_len=seq_len, cond_idx=None, cond_scale=cond_scale,
                                    allow_end=predict_length, temperature=temperature, generator=generator)
            if predict_length:
                ids, lengths = self._lengths_from_end(ids)
            else:
                lengths = m_lens
            padding = ~lengths_to_mask(lengths, seq_len + 1)
            ids = ids.scatter(-1, lengths[:, None], self.end_id)
            is_mask = self.refine_mask(lengths, seq_len + 1)
            known = (~is_mask & ~padding) | (ids == self.end_id)
            cond_idx = torch.where(known, ids, self.pad_id)
            ids = self._decode_pass(ids, cond_vector, seq_len=seq_len, cond_idx=cond_idx,
                                    cond_scale=refine_cond_scale, allow_end=False, temperature=temperature,
                                    generator=generator)
            ids = torch.where(known, cond_idx, ids)
            return torch.where(lengths_to_mask(lengths, seq_len + 1), ids, -1), lengths
        finally:
            self.train(was_training)
