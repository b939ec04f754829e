"""Residual VQ-VAE (MoMask): 1-D conv encoder/decoder with dilated resnet blocks and a residual quantizer.

State-dict keys and shapes match upstream momask-codes ``models/vq`` exactly, so released files load strictly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()  # upstream's hand-written x*sigmoid(x)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation '{name}' (relu, silu, gelu)")


def _norm(kind: str | None, channels: int) -> nn.Module:
    if kind == "LN":
        return nn.LayerNorm(channels)
    if kind == "GN":
        return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)
    if kind == "BN":
        return nn.BatchNorm1d(num_features=channels, eps=1e-6, affine=True)
    return nn.Identity()  # None, "None" (upstream's opt.txt string) and anything else: no norm


class ResConv1DBlock(nn.Module):
    """norm -> act -> dilated conv3 -> norm -> act -> conv1 -> dropout, plus the skip. Input (B, C, T)."""

    def __init__(self, *, channels: int, dilation: int, activation: str = "relu", norm: str | None = None,
                 dropout: float = 0.2):
        super().__init__()
        self.norm = norm
        self.norm1 = _norm(norm, channels)
        self.norm2 = _norm(norm, channels)
        self.activation1 = _activation(activation)
        self.activation2 = _activation(activation)
        self.conv1 = nn.Conv1d(channels, channels, 3, 1, dilation, dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1, 1, 0)
        self.dropout = nn.Dropout(dropout)

    def _norm_act(self, x: torch.Tensor, norm: nn.Module, act: nn.Module) -> torch.Tensor:
        if self.norm == "LN":  # LayerNorm normalises the channel axis, which is dim 1 here
            return act(norm(x.transpose(-2, -1)).transpose(-2, -1))
        return act(norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._norm_act(x, self.norm1, self.activation1))
        h = self.conv2(self._norm_act(h, self.norm2, self.activation2))
        return self.dropout(h) + x


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations growth**0..growth**(depth-1), reversed when ``reverse_dilation``."""

    def __init__(self, *, channels: int, depth: int, dilation_growth_rate: int, reverse_dilation: bool = True,
                 activation: str = "relu", norm: str | None = None):
        super().__init__()
        blocks = [ResConv1DBlock(channels=channels, dilation=dilation_growth_rate ** d, activation=activation,
                                 norm=norm) for d in range(depth)]
        if reverse_dilation:
            blocks = blocks[::-1]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_width, T) -> (B, output_emb_width, T / stride_t**down_t)."""

    def __init__(self, *, input_width: int, output_emb_width: int, down_t: int, stride_t: int, width: int,
                 depth: int, dilation_growth_rate: int, activation: str = "relu", norm: str | None = None):
        super().__init__()
        filter_t, pad_t = stride_t * 2, stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(input_width, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(nn.Sequential(
                nn.Conv1d(width, width, filter_t, stride_t, pad_t),
                Resnet1D(channels=width, depth=depth, dilation_growth_rate=dilation_growth_rate,
                         activation=activation, norm=norm),
            ))
        blocks.append(nn.Conv1d(width, output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, output_emb_width, T') -> (B, T' * 2**down_t, input_width) (note: time-major output, as upstream)."""

    def __init__(self, *, input_width: int, output_emb_width: int, down_t: int, width: int, depth: int,
                 dilation_growth_rate: int, activation: str = "relu", norm: str | None = None):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv1d(output_emb_width, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(nn.Sequential(
                Resnet1D(channels=width, depth=depth, dilation_growth_rate=dilation_growth_rate,
                         reverse_dilation=True, activation=activation, norm=norm),
                nn.Upsample(scale_factor=2, mode="nearest"),  # upstream upsamples by 2 whatever stride_t is
                nn.Conv1d(width, width, 3, 1, 1),
            ))
        blocks += [nn.Conv1d(width, width, 3, 1, 1), nn.ReLU(), nn.Conv1d(width, input_width, 3, 1, 1)]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).permute(0, 2, 1)


def _gumbel_noise(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(t.shape, generator=generator, device=t.device, dtype=t.dtype)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


class QuantizeEMAReset(nn.Module):
    """One codebook (nb_code, code_dim) updated by EMA of assigned vectors; unused codes are reset to data.

    The codebook is the only state-dict entry (buffer ``codebook``). The EMA sums/counts are kept as
    non-persistent buffers, as upstream keeps them out of the checkpoint. On the first training forward the
    codebook is initialised from the batch, unless weights were loaded (then the EMA starts from them;
    upstream would re-initialise from data on resume, throwing the trained codebook away).
    """

    def __init__(self, *, nb_code: int, code_dim: int, mu: float):
        super().__init__()
        self.nb_code = nb_code
        self.code_dim = code_dim
        self.mu = mu
        self.init = False
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.generator: torch.Generator | None = None  # optional RNG for sampling/resets (set by trainers)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "codebook" in state_dict:
            self.code_sum = self.codebook.clone()
            self.code_count = torch.ones(self.nb_code, device=self.codebook.device)
            self.init = True

    def _tile(self, x: torch.Tensor) -> torch.Tensor:
        """Repeat data vectors (with small noise) until there are at least nb_code of them."""
        n, dim = x.shape
        if n >= self.nb_code:
            return x
        reps = (self.nb_code + n - 1) // n
        out = x.repeat(reps, 1)
        noise = torch.randn(out.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return out + noise * (0.01 / math.sqrt(dim))

    @torch.no_grad()
    def init_codebook(self, x: torch.Tensor) -> None:
        self.codebook = self._tile(x)[: self.nb_code].clone()
        self.code_sum = self.codebook.clone()
        self.code_count = torch.ones(self.nb_code, device=x.device, dtype=x.dtype)
        self.init = True

    def quantize(self, x: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
        """(N, C) -> nearest code index (N,); Gumbel-perturbed in training when temperature > 0."""
        k = self.codebook.t()
        # the expanded squared distance, exactly as upstream computes it (ties resolve identically)
        distance = (x ** 2).sum(dim=-1, keepdim=True) - 2 * (x @ k) + (k ** 2).sum(dim=0, keepdim=True)
        logits = -distance
        if self.training and temperature and temperature > 0:
            logits = logits / temperature + _gumbel_noise(logits, self.generator)
        return logits.argmax(dim=-1)

    def dequantize(self, code_idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(code_idx, self.codebook)

    @staticmethod
    def _perplexity(code_idx: torch.Tensor, nb_code: int, dtype: torch.dtype) -> torch.Tensor:
        count = torch.bincount(code_idx.reshape(-1), minlength=nb_code).to(dtype)
        prob = count / count.sum()
        return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())

    @torch.no_grad()
    def update_codebook(self, x: torch.Tensor, code_idx: torch.Tensor) -> torch.Tensor:
        """EMA update of sums and counts; codes whose EMA count fell below 1 are replaced by data vectors."""
        onehot = torch.zeros(self.nb_code, x.shape[0], device=x.device, dtype=x.dtype)
        onehot.scatter_(0, code_idx.view(1, -1), 1)
        code_sum = onehot @ x
        code_count = onehot.sum(dim=-1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under torchrun (DDP): the statistics of the global batch, as one process would see them (sums add up)
            torch.distributed.all_reduce(code_sum)
            torch.distributed.all_reduce(code_count)
        code_rand = self._tile(x)[: self.nb_code]
        self.code_sum = self.mu * self.code_sum + (1.0 - self.mu) * code_sum
        self.code_count = self.mu * self.code_count + (1.0 - self.mu) * code_count
        usage = self.code_count.view(-1, 1) >= 1.0
        updated = self.code_sum / self.code_count.view(-1, 1)
        # a select, not upstream's usage*updated + (1-usage)*rand blend: same values, but a zero count gives no NaN
        self.codebook = torch.where(usage, updated, code_rand)
        prob = code_count / code_count.sum()
        return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())

    def forward(self, x: torch.Tensor, temperature: float = 0.0):
        """(B, C, T) -> (quantized (B, C, T) with straight-through grads, indices (B, T), commit loss, perplexity)."""
        b, c, t = x.shape
        flat = x.permute(0, 2, 1).reshape(-1, c)
        if self.training and not self.init:
            self.init_codebook(flat.detach())
        code_idx = self.quantize(flat, temperature)
        x_d = self.dequantize(code_idx)
        if self.training:
            perplexity = self.update_codebook(flat.detach(), code_idx)
        else:
            perplexity = self._perplexity(code_idx, self.nb_code, flat.dtype)
        commit_loss = F.mse_loss(flat, x_d.detach())
        x_d = flat + (x_d - flat).detach()
        return x_d.view(b, t, c).permute(0, 2, 1).contiguous(), code_idx.view(b, t), commit_loss, perplexity


class ResidualVQ(nn.Module):
    """Stack of quantizers, each coding the residual of the previous ones (SoundStream Alg. 1).

    Quantize dropout: in training, with probability ``quantize_dropout_prob`` the layers after a random
    index in [cutoff, num_quantizers) are skipped (their indices are -1), so the first layers learn a coarse code.
    """

    def __init__(self, *, num_quantizers: int, nb_code: int, code_dim: int, mu: float, shared_codebook: bool = False,
                 quantize_dropout_prob: float = 0.5, quantize_dropout_cutoff_index: int = 0):
        super().__init__()
        if quantize_dropout_cutoff_index < 0 or quantize_dropout_prob < 0:
            raise ValueError("quantize dropout index and probability must be >= 0")
        self.num_quantizers = num_quantizers
        if shared_codebook:
            layer = QuantizeEMAReset(nb_code=nb_code, code_dim=code_dim, mu=mu)
            self.layers = nn.ModuleList([layer for _ in range(num_quantizers)])
        else:
            self.layers = nn.ModuleList([QuantizeEMAReset(nb_code=nb_code, code_dim=code_dim, mu=mu)
                                         for _ in range(num_quantizers)])
        self.quantize_dropout_prob = quantize_dropout_prob
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.generator: torch.Generator | None = None

    @property
    def codebooks(self) -> torch.Tensor:
        """(Q, nb_code, code_dim)."""
        return torch.stack([layer.codebook for layer in self.layers], dim=0)

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, N, q<=Q), -1 = missing -> code vectors (Q, B, N, D); missing layers give zeros."""
        q = indices.shape[-1]
        if q < self.num_quantizers:
            indices = F.pad(indices, (0, self.num_quantizers - q), value=-1)
        books = self.codebooks  # (Q, C, D)
        idx = indices.permute(2, 0, 1)  # (Q, B, N)
        missing = idx < 0
        codes = torch.stack([books[i][idx[i].clamp(min=0)] for i in range(self.num_quantizers)], dim=0)
        return codes.masked_fill(missing.unsqueeze(-1), 0.0)

    def get_codebook_entry(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, N, q) -> summed latent (B, D, N)."""
        return self.get_codes_from_indices(indices).sum(dim=0).permute(0, 2, 1)

    def forward(self, x: torch.Tensor, sample_codebook_temp: float | None = None, force_dropout_index: int = -1):
        """(B, D, T) -> (quantized (B, D, T), indices (B, T, Q), mean commit loss, mean perplexity)."""
        num_quant = self.num_quantizers
        drop_from = num_quant
        dropping = False
        if (self.training and self.quantize_dropout_prob > 0
                and torch.rand((), generator=self.generator).item() < self.quantize_dropout_prob):
            dropping = True
            lo = self.quantize_dropout_cutoff_index
            drop_from = int(torch.randint(lo, num_quant, (), generator=self.generator).item())
        if force_dropout_index >= 0:
            dropping, drop_from = True, force_dropout_index
        quantized_out = torch.zeros_like(x)
        residual = x
        indices, losses, perplexities = [], [], []
        for i, layer in enumerate(self.layers):
            if dropping and i > drop_from:
                indices.append(torch.full((x.shape[0], x.shape[-1]), -1, device=x.device, dtype=torch.long))
                continue
            quantized, idx, loss, perplexity = layer(residual, temperature=sample_codebook_temp or 0.0)
            residual = residual - quantized.detach()
            quantized_out = quantized_out + quantized
            indices.append(idx)
            losses.append(loss)
            perplexities.append(perplexity)
        return (quantized_out, torch.stack(indices, dim=-1), sum(losses) / len(losses),
                sum(perplexities) / len(perplexities))

    def quantize(self, x: torch.Tensor, return_latent: bool = False):
        """All layers, no dropout: (B, D, T) -> indices (B, T, Q) [, per-layer codes (Q, B, D, T)]."""
        residual = x
        indices, codes = [], []
        for layer in self.layers:
            quantized, idx, _, _ = layer(residual)
            residual = residual - quantized.detach()
            indices.append(idx)
            codes.append(quantized)
        code_idx = torch.stack(indices, dim=-1)
        if return_latent:
            return code_idx, torch.stack(codes, dim=0)
        return code_idx


class RVQVAE(nn.Module):
    """Motion features (B, T, input_width) <-> residual code indices (B, T / stride_t**down_t, Q)."""

    def __init__(self, *, input_width: int, nb_code: int, code_dim: int, output_emb_width: int | None = None,
                 down_t: int, stride_t: int, width: int, depth: int, dilation_growth_rate: int,
                 activation: str = "relu", norm: str | None = None, num_quantizers: int,
                 shared_codebook: bool = False, quantize_dropout_prob: float = 0.2,
                 quantize_dropout_cutoff_index: int = 0, mu: float = 0.99):
        super().__init__()
        output_emb_width = code_dim if output_emb_width is None else output_emb_width
        if output_emb_width != code_dim:
            raise ValueError(f"output_emb_width ({output_emb_width}) must equal code_dim ({code_dim})")
        self.code_dim = code_dim
        self.num_code = nb_code
        self.input_width = input_width
        self.downsample = stride_t ** down_t
        self.encoder = Encoder(input_width=input_width, output_emb_width=output_emb_width, down_t=down_t,
                               stride_t=stride_t, width=width, depth=depth,
                               dilation_growth_rate=dilation_growth_rate, activation=activation, norm=norm)
        self.decoder = Decoder(input_width=input_width, output_emb_width=output_emb_width, down_t=down_t,
                               width=width, depth=depth, dilation_growth_rate=dilation_growth_rate,
                               activation=activation, norm=norm)
        self.quantizer = ResidualVQ(num_quantizers=num_quantizers, nb_code=nb_code, code_dim=code_dim, mu=mu,
                                    shared_codebook=shared_codebook, quantize_dropout_prob=quantize_dropout_prob,
                                    quantize_dropout_cutoff_index=quantize_dropout_cutoff_index)

    @property
    def num_quantizers(self) -> int:
        return self.quantizer.num_quantizers

    def encode(self, x: torch.Tensor):
        """(B, T, input_width) -> (code_idx (B, T', Q) int64, per-layer codes (Q, B, code_dim, T'))."""
        z = self.encoder(x.permute(0, 2, 1).float())
        return self.quantizer.quantize(z, return_latent=True)

    def forward(self, x: torch.Tensor):
        """(B, T, input_width) -> (reconstruction (B, T, input_width), commit loss, perplexity)."""
        z = self.encoder(x.permute(0, 2, 1).float())
        z_q, _, commit_loss, perplexity = self.quantizer(z, sample_codebook_temp=0.5)
        return self.decoder(z_q), commit_loss, perplexity

    def forward_decoder(self, code_idx: torch.Tensor) -> torch.Tensor:
        """Code indices (B, T', q<=Q), -1 = missing layer -> features (B, T' * downsample, input_width)."""
        return self.decoder(self.quantizer.get_codebook_entry(code_idx))


class LengthEstimator(nn.Module):
    """Text feature (B, input_size) -> logits over output_size length bins (bin * unit_length = frames)."""

    def __init__(self, *, input_size: int, output_size: int, hidden: int = 512, dropout: float = 0.2):
        super().__init__()
        h = hidden
        self.output = nn.Sequential(
            nn.Linear(input_size, h), nn.LayerNorm(h), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h, h // 2), nn.LayerNorm(h // 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h // 2, h // 4), nn.LayerNorm(h // 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h // 4, output_size),
        )
        self.output.apply(_init_weights)

    def forward(self, text_emb: torch.Tensor) -> torch.Tensor:
        return self.output(text_emb)


def _init_weights(module: nn.Module) -> None:
    """Upstream's init: N(0, 0.02) linear/embedding weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
