"""Re-learning attacks: does a forgotten concept come back when someone trains the unlearned weights a little?

Two attacks on MoMask's masked transformer (the base token layer, where the concept lives):

- **RL re-learning** (:func:`relearn_rl`): the seed paper's post-training from text prompts alone ("No MoCap
  Needed", DDPO with importance sampling + a TMR reward), moved from diffusion to mask-predict. The MDP is the
  mask-predict schedule: the state of iteration i is the partly masked token sequence, the action is the tokens
  sampled at the masked positions, and the re-masking that follows is deterministic given the scores. The log-prob of
  an iteration is the sum over its sampled positions (:func:`policy_logprobs`); the importance ratio between the
  current policy and the behaviour policy that sampled the batch enters PPO's clipped surrogate, summed over the
  iterations (:func:`ppo_loss`). The reward of a sample is the TMR cosine between its decoded motion and its own
  prompt (:class:`TMRReward`), optionally minus a KL estimate to the starting model (off by default, as in the seed),
  normalised per prompt as DDPO does (:func:`normalise_rewards`). Only LoRA adapters train (rank 4 on attention and
  feed-forward layers, no dropout, src.models.lora); at the end they are merged into a new run.
- **Fine-tuning re-learning** (:func:`relearn_ft`): k forget motions and n optimizer steps of the masked
  transformer's own training loss (optionally also the VQ decoder and codebook, which LCR edits).

For both, :func:`leakage_point` measures leakage with the ground-truth judge after given step counts, and
:func:`attack_model` runs one attack on one generator (resumable, with its leakage curve): the function that
``python -m src.attacks --attacks relearn_rl/relearn_ft`` can call per model. On its own::

    python -m src.attacks.relearn --dataset_name synth --concept violence --attack rl \
        --models original=t2m_synth,uce=t2m_synth_uce+res=t2m_synth_uce_res,lcr=t2m_synth+vq=rvq_synth_lcr
    python -m src.attacks.relearn ... --attack ft --shots 4 [--train_vq]

writes ``results/<run>/relearn_<attack>.json`` (an attacks.json record: per model the curve
``[{step, leakage: {forget_heldout, implicit}, train_s, ...}]``, the final leakage incl. retain), a Markdown table, one
plot per prompt set (leakage vs steps, one line per model), and the attacked weights as new runs
``<run>_relearn_<attack>_s<seed>`` (unless ``--no_save``). State files in ``relearn_<attack>_state/`` make a killed
run resume where its last measured step left it.

Hyper-parameters (RLConfig defaults) from the seed where they transfer: 10 sampling iterations (its DPM-Solver++
steps), several prompts each replicated 4 times per buffer, 4 policy epochs per buffer, LoRA rank 4 without dropout,
reward = TMR cosine, no KL. From DDPO's reference implementation (ddpo-pytorch config/base.py), which the seed
builds on: AdamW betas (0.9, 0.999), weight decay 1e-4, eps 1e-8, advantages clipped to +-5, gradient norm clipped
to 1. Two defaults do not transfer to a budget of a few hundred steps: with DDPO's clip range 1e-4 and lr 3e-4 the
TMR reward stayed flat over 200 steps on the quickstart's models (buffer means 0.261 -> 0.282), with PPO's clip 0.2
and lr 1e-3 it rose (0.261 -> 0.364) (``python -m src.quickstart --fast`` models, seed 0); those are the defaults
(``--clip 1e-4 --lr 3e-4`` gives DDPO's). The buffer is smaller than the seed's (64 prompts x 4) so that the default
budget fits a few CPU minutes. Rollouts sample from the full guided distribution (no top-k filter) so that every sampled
token has a finite log-prob under every policy; the leakage curves generate with the model's usual sampling.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from src.common.errors import HmuError, cli
from src.common.validate import Range
from src.config.command import DeviceOptions, Locations, RunOptions, group
from src.config.flags import opt

ATTACK_NAMES = {"rl": "relearn_rl", "ft": "relearn_ft"}
DEFAULT_STEPS = (0, 10, 25, 50, 100, 200)


# ================================================================================================ pure RL math
def normalise_rewards(rewards: torch.Tensor, prompt_ids: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """DDPO's per-prompt normalisation: (N,) rewards, (N,) prompt ids -> (N,) advantages
    ``(r - mean_p) / (std_p + eps)``.

    Mean and (population) std are over the samples of the same prompt; a prompt with a single sample uses the whole
    batch's statistics (DDPO's fallback when a prompt has too few samples). A constant reward gives zeros.
    """
    r = rewards.detach().to(torch.float64)
    ids = torch.as_tensor(prompt_ids, device=r.device)
    out = torch.zeros_like(r)
    g_mean, g_std = r.mean(), r.std(unbiased=False) if r.numel() > 1 else r.new_tensor(0.0)
    for p in torch.unique(ids):
        sel = ids == p
        x = r[sel]
        mean, std = (x.mean(), x.std(unbiased=False)) if x.numel() > 1 else (g_mean, g_std)
        out[sel] = (x - mean) / (std + eps)
    return out.to(rewards.dtype)


def ppo_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate summed over iterations, averaged over samples.

    logp_new (B, I) under the current policy (with gradients), logp_old (B, I) under the behaviour policy (treated
    as a constant), adv (B,) -> scalar ``mean_b sum_i max(-A_b r_bi, -A_b clip(r_bi, 1-c, 1+c))``,
    ``r = exp(new - old)``.
    """
    ratio = torch.exp(logp_new - logp_old.detach())
    a = adv.detach().to(ratio.dtype).unsqueeze(-1)
    unclipped = -a * ratio
    clipped = -a * ratio.clamp(1.0 - clip, 1.0 + clip)
    return torch.maximum(unclipped, clipped).sum(dim=-1).mean()


# ================================================================================================ rollouts
@dataclass
class Rollout:
    """One batch of mask-predict trajectories (I iterations, B samples, T tokens).

    ``states`` (I, B, T): the ids the model saw at iteration i (mask_id at masked positions, pad_id at pads);
    ``masks`` (I, B, T) bool: positions sampled at iteration i; ``actions`` (I, B, T): the sampled tokens (0 where
    not sampled); ``logp`` (B, I): their summed log-probs under the behaviour policy; ``ids`` (B, T): the final
    tokens, -1 at pads; ``cond`` (B, D) text features; ``m_lens`` (B,) token lengths.
    """

    cond: torch.Tensor
    m_lens: torch.Tensor
    padding_mask: torch.Tensor
    states: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    ids: torch.Tensor

    def select(self, idx: torch.Tensor) -> Rollout:
        """The samples ``idx`` (a minibatch)."""
        idx = torch.as_tensor(idx, device=self.cond.device)
        return Rollout(cond=self.cond[idx], m_lens=self.m_lens[idx], padding_mask=self.padding_mask[idx],
                       states=self.states[:, idx], masks=self.masks[:, idx], actions=self.actions[:, idx],
                       logp=self.logp[idx], ids=self.ids[idx])

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name).detach().cpu() for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor], device=None) -> Rollout:
        return cls(**{k: torch.as_tensor(d[k]).to(device) for k in (f.name for f in dataclasses.fields(cls))})


def _iteration_logp(logits: torch.Tensor, actions: torch.Tensor, masks: torch.Tensor, temperature: float
                    ) -> torch.Tensor:
    """Guided logits (N, K, T), actions (N, T), masks (N, T) -> (N,) summed log-probs of the sampled tokens."""
    logp = F.log_softmax(logits.float() / temperature, dim=1)
    tok = logp.gather(1, actions.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
    return (tok * masks.to(tok.dtype)).sum(dim=-1)


@torch.no_grad()
def rollout(model, cond: torch.Tensor, m_lens: torch.Tensor, *, timesteps: int, cond_scale: float,
            temperature: float = 1.0, generator: torch.Generator | None = None) -> Rollout:
    """Mask-predict decoding (MaskTransformer.generate's schedule) that records every iteration's state and action.

    Text features (B, D), token lengths (B,) -> :class:`Rollout`. Tokens are sampled from the full guided
    distribution ``softmax(logits / temperature)``; the model is run in eval mode and left as it was.
    """
    from src.common.modes import eval_mode
    from src.models.momask.tools import categorical_sample, decode_start, remask

    with eval_mode(model):
        device = cond.device
        m_lens, padding_mask, ids, scores = decode_start(m_lens, pad_id=model.pad_id, mask_id=model.mask_id,
                                                         device=device)
        states, masks, actions, logps = [], [], [], []
        for timestep in torch.linspace(0, 1, timesteps, device=device):
            is_mask = remask(scores, m_lens, timestep) & ~padding_mask
            ids = torch.where(is_mask, model.mask_id, ids)
            logits = model.forward_with_cond_scale(ids, cond, padding_mask, cond_scale=cond_scale)   # (B, K, T)
            pred = categorical_sample(F.softmax(logits.permute(0, 2, 1).float() / temperature, dim=-1), generator)
            states.append(ids.clone())
            masks.append(is_mask)
            actions.append(torch.where(is_mask, pred, 0))
            logps.append(_iteration_logp(logits, pred, is_mask, temperature))
            ids = torch.where(is_mask, pred, ids)
            scores = logits.permute(0, 2, 1).softmax(dim=-1).gather(2, pred.unsqueeze(-1)).squeeze(-1)
            scores = scores.masked_fill(~is_mask, 1e5)
        return Rollout(cond=cond, m_lens=m_lens, padding_mask=padding_mask, states=torch.stack(states),
                       masks=torch.stack(masks), actions=torch.stack(actions), logp=torch.stack(logps, dim=1),
                       ids=torch.where(padding_mask, -1, ids))


def policy_logprobs(model, ro: Rollout, *, cond_scale: float, temperature: float = 1.0) -> torch.Tensor:
    """(B, I) summed log-probs of a rollout's actions under ``model`` (with gradients; eval mode: no dropout, no
    condition drop, so the behaviour policy's own log-probs come back exactly). All iterations in one forward."""
    n_it, b, t = ro.states.shape
    from src.common.modes import eval_mode

    with eval_mode(model):
        logits = model.forward_with_cond_scale(ro.states.reshape(n_it * b, t), ro.cond.repeat(n_it, 1),
                                               ro.padding_mask.repeat(n_it, 1), cond_scale=cond_scale)
    lp = _iteration_logp(logits, ro.actions.reshape(n_it * b, t), ro.masks.reshape(n_it * b, t), temperature)
    return lp.view(n_it, b).T


# ================================================================================================ reward
def decode_motions(gen, ids: torch.Tensor, m_lens: torch.Tensor, cond: torch.Tensor, *,
                   generator: torch.Generator) -> list[np.ndarray]:
    """Base ids (B, T) with -1 at pads -> raw motions (T_i, dim_pose) through the generator's residual layers and
    VQ decoder (MotionGenerator.generate_ids / generate's path)."""
    with torch.no_grad():
        if gen.res is not None:
            gen.res.eval()
            all_ids = gen.res.generate(ids, cond, m_lens, temperature=gen.temperature, topk_filter_thres=gen.topkr,
                                       cond_scale=gen.res_cond_scale, generator=generator, cfg_batch=gen.cfg_batch)
        else:
            all_ids = ids.unsqueeze(-1)
        gen.vq.eval()
        feats = gen.vq.forward_decoder(all_ids).float().cpu().numpy() * gen.std + gen.mean
    return [np.ascontiguousarray(feats[k, :n * gen.unit_length], dtype=np.float32)
            for k, n in enumerate(m_lens.tolist())]


@dataclass
class TMRReward:
    """Reward = cosine between TMR's mean latents of a raw motion and of its prompt (the seed's reward)."""

    model: Any                 # src.models.tmr.model.TMR with motion and text encoders
    text_side: Any
    vocabulary: Any            # for plain text -> word/POS tokens (word-vector text sides)
    mean: np.ndarray
    std: np.ndarray
    max_motion_length: int = 196

    def text_latents(self, texts: Sequence[str]) -> torch.Tensor:
        from src.models.tmr.encode import encode_texts
        from src.models.tmr.text import tokens_from_text

        if getattr(self.text_side, "wants_text", False):
            toks = list(texts)
        else:
            toks = [tokens_from_text(t, self.vocabulary) for t in texts]
        return encode_texts(self.model, self.text_side, toks)

    def __call__(self, motions: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        """Raw motions (T_i, dim_pose) and their prompts -> (N,) cosine similarities (float32, CPU)."""
        from src.models.tmr.encode import encode_motions

        m = encode_motions(self.model, [((np.asarray(x)[:self.max_motion_length] - self.mean) / self.std)
                                        .astype(np.float32) for x in motions])
        t = self.text_latents(texts)
        return F.cosine_similarity(m.float(), t.float(), dim=-1).cpu()

    @classmethod
    def load(cls, run_dir, *, paths, dataset_name: str, max_motion_length: int = 196, device=None) -> TMRReward:
        """A TMR run folder (``checkpoints/<ds>/<tmr_name>``) -> reward; one-line HmuError when it is missing."""
        import json
        from pathlib import Path

        from src.data.humanml3d import HumanML3DFolder
        from src.data.word_vectorizer import load_word_vectorizer
        from src.models.tmr.load import load_tmr
        from src.models.tmr.text_side import text_side_from_config

        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise HmuError(f"TMR run {run_dir} not found: the RL attack's reward needs it (train one: python -m "
                           f"src.train.tmr --dataset_name {dataset_name} --name {run_dir.name}; or pass --tmr_name)")
        model = load_tmr(run_dir, modules=("motion_encoder", "text_encoder"))
        if device is not None:
            model = model.to(device)
        model.eval()
        cfg = json.loads((run_dir / "config.json").read_text())
        text_cfg = (cfg.get("data") or {}).get("text") or {}
        side = text_side_from_config(text_cfg, paths, dataset_name)
        vocab = load_word_vectorizer(paths.glove(dataset_name))
        stats = run_dir / "stats"
        if (stats / "mean.npy").is_file() and (stats / "std.npy").is_file():
            mean = np.load(stats / "mean.npy", allow_pickle=False)
            std = np.load(stats / "std.npy", allow_pickle=False)
        else:
            mean, std = HumanML3DFolder(paths.data_root(dataset_name)).mean_std()
        return cls(model=model, text_side=side, vocabulary=vocab, mean=np.asarray(mean, np.float32),
                   std=np.asarray(std, np.float32), max_motion_length=max_motion_length)


# ================================================================================================ RL loop
@dataclass(frozen=True, kw_only=True)
class RLConfig:
    """RL re-learning hyper-parameters (see the module docstring for where each default comes from)."""

    budget: int = 200                 # optimizer steps
    prompts_per_batch: int = 4        # distinct prompts per buffer
    per_prompt: int = 4               # samples per prompt (the seed's 4)
    epochs: int = 4                   # policy epochs per buffer (the seed's 4)
    minibatch: int = 8                # samples per optimizer step
    time_steps: int = 10              # mask-predict iterations (the seed's 10 sampling steps)
    cond_scale: float = 4.0
    temperature: float = 1.0
    lr: float = 1e-3                  # not DDPO's 3e-4 (see the module docstring)
    weight_decay: float = 1e-4
    clip: float = 0.2                 # PPO's; not DDPO's 1e-4 (see the module docstring)
    adv_clip: float = 5.0
    max_grad_norm: float = 1.0
    kl_coef: float = 0.0              # reward - kl_coef * KL(policy || start) estimate; 0 = off (the seed)
    lora_rank: int = 4
    lora_alpha: float = 4.0

    def check(self) -> None:
        if self.budget < 1:
            raise HmuError(f"the RL budget must be >= 1 optimizer step, got {self.budget}")
        for name in ("prompts_per_batch", "per_prompt", "epochs", "minibatch", "time_steps"):
            if getattr(self, name) < 1:
                raise HmuError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.clip > 0 and self.lr > 0 and self.temperature > 0):
            raise HmuError("clip, lr and temperature must be > 0")


@dataclass
class Batch:
    """One collected buffer: prompt index per sample, the rollout, rewards and advantages."""

    prompt_ids: torch.Tensor   # (N,) index into the prompt list
    rollout: Rollout
    rewards: torch.Tensor      # (N,)
    adv: torch.Tensor          # (N,)


def collect(policy, gen, reward_fn: Callable, prompts: Sequence, prompt_ids: Sequence[int], cfg: RLConfig, *,
            generator: torch.Generator, ref_logp: Callable | None = None) -> Batch:
    """Sample one buffer: prompt ``prompts[prompt_ids[n]]`` for sample n, roll out, decode, reward each motion
    against ITS prompt, normalise per prompt."""
    dev = next(policy.parameters()).device
    pid = torch.as_tensor(list(prompt_ids), dtype=torch.long)
    texts = [prompts[int(j)].text for j in pid]
    with torch.no_grad():
        cond = gen.text_encoder.encode(texts).float().to(dev)
    m_lens = torch.tensor([max(1, min(gen.max_tokens, int(prompts[int(j)].length) // gen.unit_length)) for j in pid],
                          device=dev)
    ro = rollout(policy, cond, m_lens, timesteps=cfg.time_steps, cond_scale=cfg.cond_scale,
                 temperature=cfg.temperature, generator=generator)
    motions = decode_motions(gen, ro.ids, ro.m_lens, cond, generator=generator)
    rewards = torch.as_tensor(reward_fn(motions, texts), dtype=torch.float32).reshape(-1).cpu()
    if len(rewards) != len(texts):
        raise HmuError(f"reward function gave {len(rewards)} rewards for {len(texts)} motions")
    r = rewards
    if cfg.kl_coef > 0 and ref_logp is not None:
        with torch.no_grad():
            kl = (ro.logp - ref_logp(ro)).sum(dim=-1).cpu()   # log pi/pi_ref of the sampled trajectory
        r = rewards - cfg.kl_coef * kl
    adv = normalise_rewards(r, pid).clamp(-cfg.adv_clip, cfg.adv_clip)
    return Batch(prompt_ids=pid, rollout=ro, rewards=rewards, adv=adv.to(dev))


def draw_prompt_ids(n_prompts: int, cfg: RLConfig, generator: torch.Generator) -> list[int]:
    """``prompts_per_batch`` distinct prompts (fewer if there are fewer), each repeated ``per_prompt`` times."""
    perm = torch.randperm(n_prompts, generator=generator, device=generator.device)[:cfg.prompts_per_batch].tolist()
    return [p for p in perm for _ in range(cfg.per_prompt)]


def with_mask(gen, mask):
    """A shallow copy of a MotionGenerator whose masked transformer is ``mask`` (the attacked weights)."""
    g = copy.copy(gen)
    g.mask = mask
    return g


@dataclass
class LoopState:
    """Where an attack loop stands: enough to resume it bit for bit."""

    step: int = 0
    batch: dict | None = None       # RL: the current buffer (rollout tensors, prompt ids, rewards, adv)
    epoch: int = 0
    perm: list[int] = field(default_factory=list)
    pos: int = 0
    rewards: list[float] = field(default_factory=list)   # mean reward of each buffer collected so far


class _LoopTicks:
    """What both re-learning loops do around their steps: the step-0 checkpoint of a fresh loop, the progress bar
    (advanced to a resumed loop's step), and after each step the count, the bar and the listed checkpoints."""

    def __init__(self, st: LoopState, model, state_dict: Callable[[], dict], *, budget: int, desc: str,
                 progress: bool, checkpoints: Sequence[int], on_checkpoint: Callable | None):
        from src.common.progress import progress as progress_bar

        self.st, self.model, self.state_dict = st, model, state_dict
        self.checkpoints, self.on_checkpoint = checkpoints, on_checkpoint
        if st.step == 0 and 0 in checkpoints and on_checkpoint is not None:
            on_checkpoint(0, model, state_dict())
        self.bar = progress_bar(total=budget, desc=desc, unit="step", enabled=progress)
        if st.step:
            self.bar.update(st.step)

    def step_done(self) -> None:
        self.st.step += 1
        self.bar.update(1)
        if self.st.step in self.checkpoints and self.on_checkpoint is not None:
            self.on_checkpoint(self.st.step, self.model, self.state_dict())


def relearn_rl(gen, reward_fn: Callable, prompts: Sequence, cfg: RLConfig, *, generator: torch.Generator,
               checkpoints: Sequence[int] = (), on_checkpoint: Callable | None = None,
               resume: dict | None = None, progress: bool = False):
    """DDPO (importance-sampling form) on ``gen.mask`` with LoRA adapters; returns (adapted model, LoopState).

    ``on_checkpoint(step, adapted_model, state_dict)`` is called before training (step 0, if listed) and after
    every listed optimizer step; ``state_dict`` (see :func:`rl_state`) resumes the run via ``resume``.
    ``gen`` is not changed.
    """
    from src.models.lora import LoRAConfig, add_lora, load_lora_state_dict, lora_parameters, lora_scale

    cfg.check()
    if not prompts:
        raise HmuError("the RL attack has no prompt to train on")
    policy = add_lora(gen.mask, LoRAConfig(rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=0.0), generator=generator)
    policy.eval()
    params = lora_parameters(policy)
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay, eps=1e-8)
    st = LoopState()
    dev = next(policy.parameters()).device
    if resume is not None:
        load_lora_state_dict(policy, resume["lora"], where="relearn state")
        opt.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        st = LoopState(**{k: v for k, v in resume["loop"].items()})
    checkpoints = sorted(set(int(c) for c in checkpoints if 0 <= int(c) <= cfg.budget))

    def ref_logp(ro):
        with lora_scale(policy, 0.0):
            return policy_logprobs(policy, ro, cond_scale=cfg.cond_scale, temperature=cfg.temperature)

    def state_dict():
        from src.models.lora import lora_state_dict

        return {"lora": lora_state_dict(policy), "optimizer": opt.state_dict(), "generator": generator.get_state(),
                "loop": dataclasses.asdict(st)}

    ticks = _LoopTicks(st, policy, state_dict, budget=cfg.budget, desc="relearn_rl", progress=progress,
                       checkpoints=checkpoints, on_checkpoint=on_checkpoint)
    while st.step < cfg.budget:
        if st.batch is None:
            b = collect(policy, gen, reward_fn, prompts, draw_prompt_ids(len(prompts), cfg, generator), cfg,
                        generator=generator, ref_logp=ref_logp)
            st.batch = {"prompt_ids": b.prompt_ids, "rollout": b.rollout.to_dict(), "rewards": b.rewards,
                        "adv": b.adv.cpu()}
            st.rewards.append(float(b.rewards.mean()))
            st.epoch, st.pos = 0, 0
            st.perm = torch.randperm(len(b.prompt_ids), generator=generator, device=generator.device).tolist()
        ro = Rollout.from_dict(st.batch["rollout"], device=dev)
        adv = torch.as_tensor(st.batch["adv"]).to(dev)
        idx = torch.tensor(st.perm[st.pos:st.pos + cfg.minibatch], device=dev)
        st.pos += cfg.minibatch
        if bool((adv[idx] != 0).any()):   # no signal (e.g. a constant reward): no update, not even weight decay
            logp = policy_logprobs(policy, ro.select(idx), cond_scale=cfg.cond_scale, temperature=cfg.temperature)
            loss = ppo_loss(logp, ro.logp[idx], adv[idx], cfg.clip)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
        if st.pos >= len(st.perm):
            st.epoch += 1
            st.pos = 0
            st.perm = torch.randperm(len(st.perm), generator=generator, device=generator.device).tolist()
            if st.epoch >= cfg.epochs:
                st.batch = None
        ticks.step_done()
    ticks.bar.close()
    return policy, st


def merged_policy(policy):
    """The adapted masked transformer with its adapters folded in (a plain MaskTransformer)."""
    from src.models.lora import merge

    return merge(policy, 1.0)


# ================================================================================================ FT loop
@dataclass(frozen=True, kw_only=True)
class FTConfig:
    """Fine-tuning re-learning: AdamW on the masked transformer (the finetune baseline's budget lr)."""

    budget: int = 200
    lr: float = 1e-4
    weight_decay: float = 0.0
    train_vq: bool = False            # also the VQ decoder and codebook (reconstruction loss), for LCR

    def check(self) -> None:
        if self.budget < 1:
            raise HmuError(f"the fine-tuning budget must be >= 1 optimizer step, got {self.budget}")
        if not self.lr > 0:
            raise HmuError(f"lr must be > 0, got {self.lr}")


def relearn_ft(gen, motions: Sequence[np.ndarray], captions: Sequence[Sequence[str]], cfg: FTConfig, *,
               generator: torch.Generator, checkpoints: Sequence[int] = (), on_checkpoint: Callable | None = None,
               resume: dict | None = None, progress: bool = False):
    """n optimizer steps of the masked transformer's training loss on k raw forget motions (each step: all k, one
    caption each drawn with ``generator``); returns (generator copy with the trained models, LoopState).

    ``on_checkpoint(step, attacked_generator, state_dict)`` as in :func:`relearn_rl`. ``gen`` is not changed.
    """
    from src.attacks.target import MoMaskTarget

    cfg.check()
    if not motions:
        raise HmuError("the fine-tuning attack has no forget motion")
    g2 = with_mask(gen, copy.deepcopy(gen.mask))
    if cfg.train_vq:
        g2.vq = copy.deepcopy(gen.vq)
    ids, lens = MoMaskTarget(gen).token_targets(motions)   # tokens of the ORIGINAL VQ: the data the attacker has
    dev = ids.device
    params = [p for p in g2.mask.parameters() if p.requires_grad]
    vq_params: list = []
    if cfg.train_vq:
        for p in g2.vq.parameters():
            p.requires_grad_(False)
        for p in [*g2.vq.decoder.parameters(), *g2.vq.quantizer.parameters()]:
            p.requires_grad_(True)
            vq_params.append(p)
    opt = torch.optim.AdamW(params + vq_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    st = LoopState()
    if resume is not None:
        g2.mask.load_state_dict(resume["mask"])
        if cfg.train_vq:
            g2.vq.load_state_dict(resume["vq"])
        opt.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        st = LoopState(**resume["loop"])
    checkpoints = sorted(set(int(c) for c in checkpoints if 0 <= int(c) <= cfg.budget))
    mean = torch.as_tensor(np.asarray(gen.mean, np.float32), device=dev)
    std = torch.as_tensor(np.asarray(gen.std, np.float32), device=dev)
    unit = gen.unit_length

    def state_dict():
        d = {"mask": {k: v.detach().cpu() for k, v in g2.mask.state_dict().items()}, "optimizer": opt.state_dict(),
             "generator": generator.get_state(), "loop": dataclasses.asdict(st)}
        if cfg.train_vq:
            d["vq"] = {k: v.detach().cpu() for k, v in g2.vq.state_dict().items()}
        return d

    ticks = _LoopTicks(st, g2, state_dict, budget=cfg.budget, desc="relearn_ft", progress=progress,
                       checkpoints=checkpoints, on_checkpoint=on_checkpoint)
    while st.step < cfg.budget:
        pick = [int(torch.randint(len(c), (1,), generator=generator, device=generator.device)) for c in captions]
        texts = [c[j] for c, j in zip(captions, pick)]
        with torch.no_grad():
            cond = gen.text_encoder.encode(texts).float().to(dev)
        g2.mask.train()
        loss, _, _ = g2.mask(ids, cond, lens, generator=generator)
        if cfg.train_vq:
            g2.vq.eval()
            for m, n in zip(motions, lens.tolist()):
                x = (torch.as_tensor(np.asarray(m[:n * unit], np.float32), device=dev) - mean) / std
                with torch.no_grad():
                    code_idx, _ = g2.vq.encode(x.unsqueeze(0))
                rec = g2.vq.decoder(g2.vq.quantizer.get_codebook_entry(code_idx))
                loss = loss + F.smooth_l1_loss(rec[0], x) / len(motions)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        g2.mask.eval()
        ticks.step_done()
    ticks.bar.close()
    return g2, st


# ================================================================================================ measuring
def leakage_point(gen, judge, sets: dict[str, Sequence], *, repeats: int, seed: int) -> dict[str, Any]:
    """{set name: rate summary (Wilson 95 % etc.)} of the judge on ``gen``'s generations of each prompt set."""
    from src.attacks.implicit import implicit_attack
    from src.attacks.target import MoMaskTarget

    target = MoMaskTarget(gen)
    return {name: implicit_attack(target, judge, list(ps), repeats=repeats, seed=seed, name=name)["leakage"]
            for name, ps in sets.items() if ps}


def split_prompts(prompts: Sequence, *, held_out: float, seed: int) -> tuple[list, list]:
    """Seeded split of prompts into (train, held-out) (the seed's 80/20); at least one of each when >= 2."""
    n = len(prompts)
    order = np.random.default_rng([int(seed), 27]).permutation(n)
    k = min(n - 1, max(1, int(round(n * held_out)))) if n >= 2 else 0
    held = sorted(order[:k].tolist())
    train = sorted(order[k:].tolist())
    return [prompts[i] for i in train], [prompts[i] for i in held]


def parse_steps(text: str | Sequence[int]) -> list[int]:
    """'0,10,25' -> [0, 10, 25] (sorted, unique, >= 0); HmuError on anything else or a largest step of 0."""
    if isinstance(text, str):
        try:
            steps = [int(s) for s in text.replace(" ", "").split(",") if s]
        except ValueError:
            raise HmuError(f"--steps {text!r}: comma-separated integers expected") from None
    else:
        steps = [int(s) for s in text]
    if not steps or min(steps) < 0:
        raise HmuError(f"--steps {text!r}: non-negative step counts expected")
    steps = sorted(set(steps))
    if steps[-1] == 0:
        raise HmuError("--steps: a budget of 0 optimizer steps attacks nothing (give a positive step count)")
    return steps


def curve_plot(curves: dict[str, list[dict]], path, *, set_name: str = "forget", title: str = "") -> Any:
    """Leakage vs optimizer steps, one line per model label (Wilson 95 % band). ``curves[label]`` is a list of
    ``{"step", "leakage": {set: summary}}``. Writes a PNG atomically; returns its path."""
    from src.viz.plots import PALETTE, _figure, _save

    fig = _figure((840, 480), 120)
    ax = fig.add_subplot(111)
    for i, (label, pts) in enumerate(curves.items()):
        xs, ys, lo, hi = [], [], [], []
        for p in pts:
            s = (p.get("leakage") or {}).get(set_name)
            if not s or not isinstance(s.get("mean"), float) or not math.isfinite(s["mean"]):
                continue
            xs.append(p["step"])
            ys.append(s["mean"])
            w = s.get("wilson") or [s["mean"], s["mean"]]
            lo.append(w[0])
            hi.append(w[1])
        if not xs:
            continue
        c = PALETTE[i % len(PALETTE)]
        ax.plot(xs, ys, marker="o", color=c, label=label)
        ax.fill_between(xs, lo, hi, color=c, alpha=0.15)
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(f"leakage ({set_name} prompts)")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, 120)



# ================================================================================================ one model, resumable
def attack_model(gen, *, attack: str, judge, sets: dict[str, Sequence], steps: Sequence[int], seed: int,
                 repeats: int, rl: RLConfig | None = None, ft: FTConfig | None = None,
                 reward_fn: Callable | None = None,
                 rl_prompts: Sequence = (), ft_motions: Sequence[np.ndarray] = (),
                 ft_captions: Sequence[Sequence[str]] = (), state_path=None, final_sets: dict | None = None,
                 progress: bool = False) -> tuple[dict[str, Any], Any]:
    """Run one re-learning attack on one generator and measure its leakage curve; the function ``python -m
    src.attacks`` can call per model (``--attacks relearn_rl/relearn_ft``).

    ``sets``: {name: prompts} judged after every step of ``steps``; ``final_sets`` only after the last one (e.g.
    retain prompts). ``state_path``: a file that makes the run resumable (written at every step of ``steps``; an
    existing one is resumed). Returns (result entry for attacks.json, attacked generator with plain weights).
    """
    import time
    from pathlib import Path

    from src.attacks.scoring import torch_gen
    from src.common.io import atomic_torch_save, torch_load

    if attack not in ATTACK_NAMES:
        raise HmuError(f"unknown re-learning attack {attack!r} (choose from {', '.join(ATTACK_NAMES)})")
    steps = parse_steps(list(steps))
    budget = steps[-1]
    resume, curve = None, []
    if state_path is not None and Path(state_path).is_file():
        saved = torch_load(state_path, what="re-learning state")
        resume, curve = saved["state"], list(saved["curve"])
    t_start = time.perf_counter() - (curve[-1]["time_s"] if curve else 0.0)
    generator = torch_gen(seed, 27, 0 if attack == "rl" else 1, device=getattr(gen, "device", None))

    eval_s = [curve[-1].get("eval_s_total", 0.0) if curve else 0.0]   # judging time, kept apart from training time

    def on_checkpoint(step, model, state):
        attacked = with_mask(gen, model) if attack == "rl" else model
        t_eval = time.perf_counter()
        leak = leakage_point(attacked, judge, sets, repeats=repeats, seed=seed)
        eval_s[0] += time.perf_counter() - t_eval
        now = time.perf_counter() - t_start
        point = {"step": int(step), "time_s": now, "train_s": now - eval_s[0], "eval_s_total": eval_s[0],
                 "leakage": leak}
        if attack == "rl":
            point["reward_mean"] = state["loop"]["rewards"][-1] if state["loop"]["rewards"] else None
        curve.append(point)
        if state_path is not None:
            atomic_torch_save({"state": state, "curve": curve}, state_path)

    if attack == "rl":
        cfg = dataclasses.replace(rl or RLConfig(), budget=budget)
        model, st = relearn_rl(gen, reward_fn, rl_prompts, cfg, generator=generator, checkpoints=steps,
                               on_checkpoint=on_checkpoint, resume=resume, progress=progress)
        attacked = with_mask(gen, merged_policy(model))
        extra = {"rewards": st.rewards, "config": {**dataclasses.asdict(cfg), "n_train_prompts": len(rl_prompts)}}
    else:
        cfg = dataclasses.replace(ft or FTConfig(), budget=budget)
        attacked, st = relearn_ft(gen, ft_motions, ft_captions, cfg, generator=generator, checkpoints=steps,
                                  on_checkpoint=on_checkpoint, resume=resume, progress=progress)
        extra = {"config": {**dataclasses.asdict(cfg), "shots": len(ft_motions)}}
    final = dict(curve[-1]["leakage"]) if curve else {}
    if final_sets:
        final.update(leakage_point(attacked, judge, final_sets, repeats=repeats, seed=seed))
    first_set = next(iter(sets))
    result = {"attack": ATTACK_NAMES[attack], "set": first_set, "leakage": final.get(first_set),
              "final": final, "curve": curve, "steps": steps, "timing_s": time.perf_counter() - t_start,
              **extra}
    result["config"].update(seed=seed, repeats=repeats)
    return result, attacked


# ================================================================================================ CLI
_POS, _NONNEG = Range(lo=0, lo_open=True), Range(lo=0)


@dataclasses.dataclass(kw_only=True)
class RelearnCommand:
    """python -m src.attacks.relearn"""

    dataset_name: str = opt("synth", help="dataset name (the leakage judge needs synth's ground truth)")
    concept: str = opt("violence", help="the forgotten concept", aliases=("--split_name",))
    models: str = opt(help="comma-separated label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none], as python "
                           "-m src.attacks (e.g. original=t2m_synth,uce=t2m_synth_uce)")
    ckpt: str = opt("net_best_fid.tar", help="default masked-transformer checkpoint file in <NAME>/model/")
    res_name: str | None = opt(None, help="default residual-transformer run ('none': base layer only)")
    res_ckpt: str = opt("net_best_fid.tar", help="default residual-transformer checkpoint file")
    attack: str = opt("rl", help="rl: RL post-training from prompts (TMR reward); ft: fine-tuning on forget "
                                 "motions", choices=tuple(ATTACK_NAMES))
    steps: str = opt(",".join(map(str, DEFAULT_STEPS)),
                     help="optimizer-step counts where leakage is measured; the largest is the budget")
    prompts: str | None = opt(None, help="RL training prompts (.txt one a line, optional '#frames'; .json list); "
                                         "default: the concept's keyword forget prompts (training part)")
    held_out: float = opt(0.2, help="fraction of the forget prompts held out for measuring (the seed's 80/20)",
                          range=Range(lo=0, hi=1, lo_open=True, hi_open=True))
    repeats: int = opt(3, help="generations per prompt at each measured step", range=_POS)
    seed: int = opt(0, help="seed of every draw (prompt split, shots, sampling, training)", range=_NONNEG)
    tmr_name: str = opt("tmr", help="RL reward: TMR run checkpoints/<dataset>/<tmr_name>")
    shots: int = opt(4, help="ft: forget training motions the attacker has (k = 1, 4, 16)", range=_POS)
    train_vq: bool = opt(False, help="ft: also train the VQ decoder and codebook (LCR edits those)")
    lr: float | None = opt(None, help="learning rate (default: rl 1e-3, ft 1e-4 as the finetune baseline)",
                           range=_POS)
    prompts_per_batch: int = opt(4, help="rl: distinct prompts per buffer", range=_POS)
    per_prompt: int = opt(4, help="rl: samples per prompt (the seed's 4)", range=_POS)
    epochs: int = opt(4, help="rl: policy epochs per buffer (the seed's 4)", range=_POS)
    minibatch: int = opt(8, help="rl: samples per optimizer step", range=_POS)
    time_steps: int = opt(10, help="rl: mask-predict iterations of a rollout (the seed's 10 sampling steps)")
    clip: float = opt(0.2, help="rl: PPO clip range (PPO's 0.2; DDPO's 1e-4 barely moves in 200 steps)", range=_POS)
    kl_coef: float = opt(0.0, help="rl: reward minus kl_coef x KL to the starting model (0 = off, the seed)",
                         range=_NONNEG)
    classifier: str | None = opt(None, help="action classifier file (default: checkpoints/<ds>/"
                                            "action_classifier/model/classifier.tar)")
    no_save: bool = opt(False, help="do not save the attacked weights as new runs "
                                    "(<NAME>_relearn_<attack>_s<seed>)")
    run_name: str | None = opt(None, help="results/<run_name>/relearn_<attack>.json (default "
                                          "<dataset>_attacks_<concept>_s<seed>, python -m src.attacks's)")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations)
    run: RunOptions = group(RunOptions)

    def check(self) -> None:
        parse_steps(self.steps)



def _read_training_prompts(path, spec, glove_dir) -> list:
    from pathlib import Path

    from src.data.prompts import read_prompts

    if not Path(path).is_file():
        raise HmuError(f"--prompts file not found: {path}")
    ps = [p for p in read_prompts(path) if p.text.strip()]
    ps = [dataclasses.replace(p, length=spec.crop_length(p.length or spec.max_motion_length, at_least_one_unit=True))
          for p in ps]
    if not ps:
        raise HmuError(f"--prompts {path} holds no usable prompt")
    return ps


def _save_attacked(ctx, ms, gen, attacked, attack: str, seed: int, cfg_dict: dict) -> dict[str, str]:
    """The attacked weights as NEW runs ``<source>_relearn_<attack>_s<seed>``: the masked transformer, and the VQ
    when the attack trained it (then the new transformer run's opt.txt still names the source VQ: pair them with
    ``+vq=<new VQ run>`` in a model spec)."""
    from src.methods.run_output import edit_meta, model_checkpoint, output_dir, write_run
    from src.models.checkpoint import find_run_dir

    out = {}
    parts = [("mask", ms.name, ms.ckpt, attacked.mask)]
    if attacked.vq is not gen.vq:
        parts.append(("vq", gen.sources.get("vq_name") or ms.vq_name, "net_best_fid.tar", attacked.vq))
    for kind, source, ckpt, model in parts:
        src = find_run_dir(ctx.paths, ctx.dataset.name, source)
        name = f"{source}_relearn_{attack}_s{seed}"
        dest = output_dir(ctx.paths, ctx.dataset.name, name, force=True, sources=(src,))
        meta = edit_meta(method=f"relearn_{attack}", args=cfg_dict, source_ckpt=src / "model" / ckpt)
        write_run(dest, source_run=src, out_name=name, force=True,
                  checkpoints={ckpt: model_checkpoint(kind, model, hmu_meta=meta)})
        out[kind] = name
    return out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    import json
    import logging
    import time
    from pathlib import Path

    from src.config.command import command_context, parse_config

    cfg = parse_config(RelearnCommand, argv, prog="python -m src.attacks.relearn", doc=__doc__.split("\n")[0])
    steps = parse_steps(cfg.steps)
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    spec = ctx.dataset
    if not spec.synthetic:
        raise HmuError(f"re-learning leakage is judged by ground truth, which only synth has (got {spec.name})")
    from src.attacks.inputs import _prompts_from, forget_train_ids, load_target, parse_models
    from src.attacks.record import build_attack_record
    from src.common.io import atomic_write_text
    from src.data.synth.truth import read_eval_prompts, read_implicit_prompts, read_labels
    from src.eval.leakage import LeakageProbe, classifier_path
    from src.eval.results import metrics_path, write_metrics

    log = logging.getLogger("src.attacks.relearn")
    from src.common.run_names import default_run_name

    res_name = cfg.res_name if cfg.res_name is not None else default_run_name(spec.name, "res")
    specs = parse_models(cfg.models, ckpt=cfg.ckpt, res_name=res_name, res_ckpt=cfg.res_ckpt)
    run = cfg.run_name or f"{spec.name}_attacks_{cfg.concept}_s{cfg.seed}"
    out = metrics_path(ctx.paths.results_dir, run).with_name(f"relearn_{cfg.attack}.json")
    state_dir = out.parent / f"relearn_{cfg.attack}_state"
    if out.exists() and not ctx.force:
        raise HmuError(f"results file {out} already exists (pass --force to overwrite)")
    if ctx.force and state_dir.exists():
        import shutil

        shutil.rmtree(state_dir)
    root = ctx.data_root
    labels = read_labels(root)
    if cfg.concept not in labels.get("concepts", {}):
        raise HmuError(f"--concept '{cfg.concept}' is not in {root / 'labels.json'}")
    forget = _prompts_from(read_eval_prompts(root).get("forget", []), f"{root / 'prompts.json'} forget", spec,
                           cfg.concept)
    retain = _prompts_from(read_eval_prompts(root).get("retain", []), f"{root / 'prompts.json'} retain", spec)
    implicit = _prompts_from([o for o in read_implicit_prompts(root) if not o.get("free_text")],
                             str(root / "implicit_prompts.json"), spec, cfg.concept)
    train_p, held_p = split_prompts(forget, held_out=cfg.held_out, seed=cfg.seed)
    if cfg.prompts:
        train_p = _read_training_prompts(cfg.prompts, spec, ctx.paths.glove(spec.name))
    if cfg.attack == "rl" and not train_p:
        raise HmuError(f"no usable training prompt of '{cfg.concept}' (prompts.json forget; or pass --prompts)")
    sets = {"forget_heldout": held_p or forget, "implicit": implicit}
    reward = None
    ft_motions, ft_caps = [], []
    if cfg.attack == "rl":
        from src.train.tmr import tmr_run_dir

        reward = TMRReward.load(tmr_run_dir(ctx.paths, spec.name, cfg.tmr_name, existing=True), paths=ctx.paths,
                                dataset_name=spec.name, max_motion_length=spec.max_motion_length, device=ctx.device)
    else:
        from src.data.humanml3d import HumanML3DFolder

        ids = forget_train_ids(root, labels, cfg.concept)
        if not ids:
            raise HmuError(f"no training motion of {root} holds '{cfg.concept}' (labels.json + train.txt)")
        pick = np.random.default_rng([cfg.seed, 27]).permutation(len(ids))[:cfg.shots]
        folder = HumanML3DFolder(root)
        for i in sorted(pick.tolist()):
            ft_motions.append(folder.motion(ids[i])[:spec.max_motion_length])
            ft_caps.append([c.text for c in folder.captions(ids[i])] or [cfg.concept])
    rl = RLConfig(budget=steps[-1], prompts_per_batch=cfg.prompts_per_batch, per_prompt=cfg.per_prompt,
                  epochs=cfg.epochs, minibatch=cfg.minibatch, time_steps=cfg.time_steps, clip=cfg.clip,
                  kl_coef=cfg.kl_coef, **({"lr": cfg.lr} if cfg.lr else {}))
    ft = FTConfig(budget=steps[-1], train_vq=cfg.train_vq, **({"lr": cfg.lr} if cfg.lr else {}))
    (rl if cfg.attack == "rl" else ft).check()
    clf = Path(cfg.classifier) if cfg.classifier else classifier_path(ctx.paths.checkpoints_dir, spec.name)
    judge = LeakageProbe.load(clf, cfg.concept)
    judge.classifier.to(ctx.device)
    state_dir.mkdir(parents=True, exist_ok=True)
    results, infos = {}, {}
    t0 = time.perf_counter()
    cfg_dict = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    for ms in specs:
        target, info = load_target(ctx.paths, spec.name, ms, device=ctx.device, sampling={})
        from src.gen.generate import BAMMGenerator

        if isinstance(target.gen, BAMMGenerator):
            raise HmuError(f"--models {ms.label}={ms.name}: a BAMM run; the re-learning attacks support MoMask's "
                           "masked transformer only (BAMM's cascaded decoding is not an MDP here yet)")
        log.info("model %s: relearn_%s, %d steps", ms.label, cfg.attack, steps[-1])
        res, attacked = attack_model(
            target.gen, attack=cfg.attack, judge=judge, sets=sets, steps=steps, seed=cfg.seed, repeats=cfg.repeats,
            rl=rl, ft=ft, reward_fn=reward, rl_prompts=train_p, ft_motions=ft_motions, ft_captions=ft_caps,
            state_path=state_dir / f"{ms.label}.tar", final_sets={"retain": retain} if retain else None,
            progress=ctx.progress)
        if not cfg.no_save:
            res["saved_runs"] = _save_attacked(ctx, ms, target.gen, attacked, cfg.attack, cfg.seed, cfg_dict)
        results[ms.label] = {ATTACK_NAMES[cfg.attack]: res}
        infos[ms.label] = info
    record = build_attack_record(run=run, seed=cfg.seed, config=cfg_dict, models=infos, results=results,
                                 evaluator=None,
                                 classifier={"path": str(clf), "concept": cfg.concept, "threshold": judge.threshold})
    record["timing_s"] = time.perf_counter() - t0
    record["prompt_sets"] = {"train": [p.text for p in train_p], **{k: [p.text for p in v] for k, v in sets.items()}}
    write_metrics(out, record, force=True)
    curves = {lab: r[ATTACK_NAMES[cfg.attack]]["curve"] for lab, r in results.items()}
    for set_name in sets:
        curve_plot(curves, out.with_name(f"relearn_{cfg.attack}_{set_name}.png"), set_name=set_name,
                   title=f"{ATTACK_NAMES[cfg.attack]}: leakage on {set_name} prompts")
    atomic_write_text(out.with_suffix(".md"), curve_table(record))
    print(curve_table(record))
    print(f"re-learning results written to {out}")
    return 0


def curve_table(record: dict[str, Any]) -> str:
    """Markdown table: one row per (model, step), leakage with Wilson 95 % per prompt set."""
    rows, sets = [], []
    for label, res in record["results"].items():
        for att, r in res.items():
            for p in r.get("curve", []):
                for s in p["leakage"]:
                    if s not in sets:
                        sets.append(s)
    lines = ["| model | attack | steps | " + " | ".join(sets) + " | training time (s) |",
             "|---|---|---:|" + "---|" * len(sets) + "---:|"]
    for label, res in record["results"].items():
        for att, r in res.items():
            for p in r.get("curve", []):
                cells = []
                for s in sets:
                    x = p["leakage"].get(s)
                    if not x or x.get("mean") is None:
                        cells.append("-")
                        continue
                    w = x.get("wilson") or [float("nan")] * 2
                    cells.append(f"{x['mean']:.3f} [{w[0]:.3f}, {w[1]:.3f}]")
                secs = p.get("train_s", p["time_s"])
                lines.append(f"| {label} | {att} | {p['step']} | " + " | ".join(cells) + f" | {secs:.0f} |")
    return "\n".join(lines) + "\n"


__all__ = ["ATTACK_NAMES", "Batch", "DEFAULT_STEPS", "FTConfig", "LoopState", "RLConfig", "Rollout", "TMRReward",
           "attack_model", "collect", "curve_plot", "curve_table", "decode_motions", "draw_prompt_ids",
           "leakage_point", "main", "merged_policy",
           "normalise_rewards", "parse_steps", "policy_logprobs", "ppo_loss", "relearn_ft", "relearn_rl", "rollout",
           "split_prompts", "with_mask"]


if __name__ == "__main__":
    raise SystemExit(main())
