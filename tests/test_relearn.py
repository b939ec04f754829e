"""Re-learning attacks (src/attacks/relearn.py): PPO/DDPO math, rollouts, the RL and fine-tuning loops on tiny
random models. Expected values are closed forms or hand-computed gradients, never the code's own output."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from src.attacks.relearn import (FTConfig, RLConfig, Rollout, collect, merged_policy, normalise_rewards, parse_steps,
                                 policy_logprobs, ppo_loss, relearn_ft, relearn_rl, rollout, split_prompts)
from src.common.errors import HmuError
from src.data.prompts import Prompt
from src.models.lora import LoRAConfig, add_lora, lora_parameters
from src.models.momask.transformer import MaskTransformer

K, CLIP, UNIT = 10, 6, 4
GOOD = 3   # the token the "reward that prefers one token" wants


def _mask() -> MaskTransformer:
    torch.manual_seed(0)
    return MaskTransformer(code_dim=8, num_tokens=K, latent_dim=16, ff_size=24, num_layers=2, num_heads=2,
                           dropout=0.1, clip_dim=CLIP, cond_drop_prob=0.1).eval()


class _Text:
    """Deterministic text features: a seeded normal vector per text."""

    def encode(self, texts):
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(t)))
            rows.append(torch.randn(CLIP, generator=g))
        return torch.stack(rows)


class _VQ(nn.Module):
    """Decoder stub: base ids (B, T, Q) -> one-hot of the base token per frame (B, T*UNIT, K); -1 -> zeros."""

    def forward_decoder(self, ids):
        base = ids[..., 0]
        oh = torch.nn.functional.one_hot(base.clamp(min=0), K).float() * (base >= 0).unsqueeze(-1).float()
        return oh.repeat_interleave(UNIT, dim=1)


@dataclass
class _Gen:
    mask: nn.Module
    res: None = None
    vq: nn.Module = None
    text_encoder: object = None
    mean: np.ndarray = None
    std: np.ndarray = None
    unit_length: int = UNIT
    max_tokens: int = 6
    temperature: float = 1.0
    topkr: float = 0.9
    res_cond_scale: float = 5.0
    cfg_batch: bool = True
    cond_scale: float = 4.0

    @property
    def device(self):
        return torch.device("cpu")


def _gen(mask=None) -> _Gen:
    return _Gen(mask=mask if mask is not None else _mask(), vq=_VQ(), text_encoder=_Text(),
                mean=np.zeros(K, np.float32), std=np.ones(K, np.float32))


PROMPTS = [Prompt("a person kicks", 24), Prompt("someone punches hard", 20), Prompt("a man strikes", 16)]


def _good_fraction(motions, texts):
    """Reward: the fraction of frames showing token GOOD (prefers one token)."""
    return torch.tensor([float(m[:, GOOD].mean()) for m in motions])


def _rollout(model, b=4, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(b, CLIP, generator=g)
    lens = torch.tensor([t, t - 1, t, 2][:b])
    return rollout(model, cond, lens, timesteps=4, cond_scale=2.0, generator=g)


def _lora_model():
    g = torch.Generator().manual_seed(1)
    m = add_lora(_mask(), LoRAConfig(rank=4, alpha=4.0, dropout=0.0), generator=g)
    with torch.no_grad():   # non-zero B so every adapter parameter has a gradient
        for p in lora_parameters(m):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m.eval()


# ------------------------------------------------------------------------------------------------ pure math
def test_normalise_rewards_per_prompt_by_hand():
    r = torch.tensor([1.0, 3.0, 10.0, 10.0, 10.0, 7.0])
    pid = torch.tensor([0, 0, 1, 1, 1, 2])
    a = normalise_rewards(r, pid)
    # prompt 0: mean 2, population std 1 -> -1, +1 ; prompt 1 constant -> 0
    assert torch.allclose(a[:5], torch.tensor([-1.0, 1.0, 0.0, 0.0, 0.0]), atol=1e-5)
    # prompt 2 has one sample: the batch's statistics (mean 41/6, population std)
    mu = 41 / 6
    sd = math.sqrt(sum((x - mu) ** 2 for x in [1, 3, 10, 10, 10, 7]) / 6)
    assert a[5].item() == pytest.approx((7 - mu) / sd, rel=1e-5)


def test_constant_reward_gives_zero_advantage():
    a = normalise_rewards(torch.full((8,), 0.37), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert torch.equal(a, torch.zeros(8))


def test_ppo_ratio_one_equals_policy_gradient_loss_and_gradient():
    model = _lora_model()
    ro = _rollout(model)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5])
    logp = policy_logprobs(model, ro, cond_scale=2.0)
    # the behaviour log-probs recorded by the rollout come back exactly: ratio 1 on the first minibatch
    assert torch.allclose(logp.detach(), ro.logp, atol=1e-4)
    ratio = torch.exp(logp - ro.logp)
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4)
    params = lora_parameters(model)
    loss = ppo_loss(logp, ro.logp, adv, clip=1e-4)
    n_it = ro.logp.shape[1]
    assert loss.item() == pytest.approx(-(adv.mean() * n_it).item(), rel=1e-4)   # sum_i of -A * 1, mean over b
    g_ppo = torch.autograd.grad(loss, params)
    logp2 = policy_logprobs(model, ro, cond_scale=2.0)
    pg = -(adv.unsqueeze(-1) * logp2).sum(-1).mean()   # the plain policy-gradient (REINFORCE) loss
    g_pg = torch.autograd.grad(pg, params)
    for a, b in zip(g_ppo, g_pg):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)
    assert sum(float(g.abs().sum()) for g in g_ppo) > 0


def test_ppo_detaches_the_behaviour_log_probs():
    """Passing the SAME graph tensor as behaviour log-probs must still give the policy gradient (a ratio whose
    denominator is not detached has zero gradient at ratio 1)."""
    model = _lora_model()
    ro = _rollout(model)
    adv = torch.tensor([1.0, -1.0, 0.5, 2.0])
    params = lora_parameters(model)
    logp = policy_logprobs(model, ro, cond_scale=2.0)
    g = torch.autograd.grad(ppo_loss(logp, logp, adv, 0.2), params)
    logp2 = policy_logprobs(model, ro, cond_scale=2.0)
    g_pg = torch.autograd.grad(-(adv.unsqueeze(-1) * logp2).sum(-1).mean(), params)
    for a, b in zip(g, g_pg):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)
    assert sum(float(x.abs().sum()) for x in g) > 0


class _BiasPolicy(nn.Module):
    """Logits = one bias vector (K,) for every position: the smallest policy whose gradient is known by hand."""

    def __init__(self, bias):
        super().__init__()
        self.bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32))
        self.mask_id, self.pad_id = K, K + 1

    def forward_with_cond_scale(self, ids, cond, pad, cond_scale=1.0):
        return self.bias.view(1, K, 1).expand(ids.shape[0], K, ids.shape[1])


def test_ppo_gradient_matches_hand_computed_softmax_gradient():
    torch.manual_seed(0)
    pol = _BiasPolicy(torch.randn(K))
    ro = _rollout(pol)
    adv = torch.tensor([1.5, -0.5, 0.25, -1.0])
    loss = ppo_loss(policy_logprobs(pol, ro, cond_scale=1.0), ro.logp, adv, clip=0.2)
    loss.backward()
    # d log softmax(b)[a] / d b = onehot(a) - softmax(b); loss = -(1/B) sum_b A_b sum_i sum_t in mask (...)
    p = torch.softmax(pol.bias.detach(), 0)
    expect = torch.zeros(K)
    n_it, b, t = ro.states.shape
    for i in range(n_it):
        for s in range(b):
            for j in range(t):
                if ro.masks[i, s, j]:
                    expect -= adv[s] / b * (torch.nn.functional.one_hot(ro.actions[i, s, j], K).float() - p)
    assert torch.allclose(pol.bias.grad, expect, atol=1e-5)
    # and a step against the gradient makes the positively rewarded sample's actions more likely
    with torch.no_grad():
        before = policy_logprobs(pol, ro, cond_scale=1.0)[0].sum()
        pol.bias -= 0.1 * pol.bias.grad
        after = policy_logprobs(pol, ro, cond_scale=1.0)[0].sum()
    assert after > before


def test_rollout_records_a_consistent_trajectory():
    model = _mask()
    ro = _rollout(model)
    n_it, b, t = ro.states.shape
    assert ro.masks[0].sum(-1).tolist() == ro.m_lens.tolist()   # iteration 0 samples every real token
    assert not (ro.masks & ro.padding_mask.unsqueeze(0)).any()
    for s in range(b):   # every real token's final value is its last sampled action
        for j in range(int(ro.m_lens[s])):
            last = max(i for i in range(n_it) if ro.masks[i, s, j])
            assert ro.ids[s, j] == ro.actions[last, s, j]
    assert (ro.ids[ro.padding_mask] == -1).all()


# ------------------------------------------------------------------------------------------------ loops
def _cfg(**kw):
    base = dict(budget=6, prompts_per_batch=2, per_prompt=3, epochs=2, minibatch=3, time_steps=3, cond_scale=2.0,
                lr=3e-2, clip=0.2, weight_decay=1e-4)
    base.update(kw)
    return RLConfig(**base)


def test_reward_is_computed_against_each_samples_own_prompt():
    gen = _gen()
    pol = add_lora(gen.mask, LoRAConfig(rank=4, alpha=4.0, dropout=0.0)).eval()
    seen = []

    def reward(motions, texts):
        seen.append(list(texts))
        return torch.tensor([1000.0 * len(t) + float(np.asarray(m).sum()) for m, t in zip(motions, texts)])

    pid = [0, 0, 1, 1, 2]
    b = collect(pol, gen, reward, PROMPTS, pid, _cfg(), generator=torch.Generator().manual_seed(0))
    assert seen[0] == [PROMPTS[j].text for j in pid]
    for n, j in enumerate(pid):
        motion = gen.vq.forward_decoder(b.rollout.ids[n:n + 1, :int(b.rollout.m_lens[n])].unsqueeze(-1))[0].numpy()
        assert b.rewards[n].item() == pytest.approx(1000.0 * len(PROMPTS[j].text) + motion.sum())
        # the conditioning of sample n is its own prompt's
        assert torch.allclose(b.rollout.cond[n], _Text().encode([PROMPTS[j].text])[0])
        assert int(b.rollout.m_lens[n]) == PROMPTS[j].length // UNIT


def test_constant_reward_makes_no_update():
    gen = _gen()
    before = {k: v.clone() for k, v in gen.mask.state_dict().items()}
    pol, st = relearn_rl(gen, lambda m, t: torch.full((len(m),), 0.8), PROMPTS, _cfg(),
                         generator=torch.Generator().manual_seed(0))
    g0 = torch.Generator().manual_seed(0)   # the adapters as add_lora draws them (A from the generator, B zero)
    fresh = add_lora(gen.mask, LoRAConfig(rank=4, alpha=4.0, dropout=0.0), generator=g0)
    for a, b in zip(lora_parameters(pol), lora_parameters(fresh)):
        assert torch.equal(a, b)
    assert st.step == 6
    for k, v in gen.mask.state_dict().items():   # the attacked model is never changed
        assert torch.equal(v, before[k])


def _p_good(model, gen):
    cond = gen.text_encoder.encode([p.text for p in PROMPTS])
    ids = torch.full((len(PROMPTS), 4), model.mask_id)
    with torch.no_grad():
        logits = model.forward_with_cond_scale(ids, cond, torch.zeros_like(ids, dtype=torch.bool), cond_scale=2.0)
    return torch.softmax(logits, dim=1)[:, GOOD].mean().item()


def _sampled_good(model, gen, n=16):
    """Fraction of GOOD among the final tokens of n fresh rollouts per prompt (the policy's own behaviour)."""
    cond = gen.text_encoder.encode([p.text for p in PROMPTS]).repeat(n, 1)
    lens = torch.tensor([p.length // UNIT for p in PROMPTS]).repeat(n)
    ro = rollout(model, cond, lens, timesteps=3, cond_scale=2.0, generator=torch.Generator().manual_seed(123))
    real = ~ro.padding_mask
    return (ro.ids[real] == GOOD).float().mean().item()


def test_reward_preferring_one_token_moves_the_policy_towards_it():
    gen = _gen()
    p0 = _sampled_good(gen.mask, gen)
    pol, st = relearn_rl(gen, _good_fraction, PROMPTS,
                         _cfg(budget=40, lr=3e-2, per_prompt=8, prompts_per_batch=3, minibatch=8, epochs=4),
                         generator=torch.Generator().manual_seed(0))
    p1 = _sampled_good(pol, gen)
    assert p1 > p0 + 0.08, (p0, p1)
    assert _p_good(pol, gen) > _p_good(gen.mask, gen)
    assert st.rewards[-1] > st.rewards[0]
    # merging the adapters gives the adapted forward
    merged = merged_policy(pol)
    assert type(merged) is MaskTransformer
    ro = _rollout(pol)
    with torch.no_grad():
        a = policy_logprobs(pol, ro, cond_scale=2.0)
        b = policy_logprobs(merged, ro, cond_scale=2.0)
    assert torch.allclose(a, b, atol=1e-4)
    assert set(merged.state_dict()) == set(gen.mask.state_dict())


def test_checkpoints_and_resume_are_bit_exact(tmp_path):
    from src.common.io import atomic_torch_save, torch_load

    gen = _gen()
    straight, _ = relearn_rl(gen, _good_fraction, PROMPTS, _cfg(budget=7), generator=torch.Generator().manual_seed(0))
    seen = {}

    def keep(step, model, state):
        atomic_torch_save(state, tmp_path / f"s{step}.tar")
        seen[step] = _p_good(model, gen)

    relearn_rl(gen, _good_fraction, PROMPTS, _cfg(budget=7), generator=torch.Generator().manual_seed(0),
               checkpoints=[0, 4, 7], on_checkpoint=keep)
    assert sorted(seen) == [0, 4, 7]
    assert seen[0] == pytest.approx(_p_good(gen.mask, gen))
    resumed, st = relearn_rl(gen, _good_fraction, PROMPTS, _cfg(budget=7), generator=torch.Generator().manual_seed(5),
                             resume=torch_load(tmp_path / "s4.tar"))
    assert st.step == 7
    for a, b in zip(lora_parameters(straight), lora_parameters(resumed)):
        assert torch.equal(a, b)


def test_finetune_relearning_raises_the_forget_tokens_likelihood():
    from src.attacks.target import MoMaskTarget

    gen = _gen()

    class _EncVQ(_VQ):   # token_targets needs an encoder: frame one-hots -> their arg-max token per unit
        def encode(self, x):
            ids = x[0].view(-1, UNIT, K)[:, 0].argmax(-1)
            return ids.view(1, -1, 1), None

        def forward(self, x):
            raise AssertionError("not used")

    gen.vq = _EncVQ()
    motions = [np.eye(K, dtype=np.float32)[[GOOD] * 16] for _ in range(2)]
    caps = [["a person kicks"], ["someone punches"]]
    before = {k: v.clone() for k, v in gen.mask.state_dict().items()}
    p0 = _p_good(gen.mask, gen)
    g2, st = relearn_ft(gen, motions, caps, FTConfig(budget=15, lr=1e-2), generator=torch.Generator().manual_seed(0))
    assert st.step == 15
    assert _p_good(g2.mask, gen) > p0 + 0.2
    for k, v in gen.mask.state_dict().items():
        assert torch.equal(v, before[k])
    ids, lens = MoMaskTarget(gen).token_targets(motions)
    assert (ids[:, :4] == GOOD).all() and lens.tolist() == [4, 4]


# ------------------------------------------------------------------------------------------------ inputs
def test_parse_steps_and_errors():
    assert parse_steps("50, 0,10,10") == [0, 10, 50]
    with pytest.raises(HmuError, match="budget of 0"):
        parse_steps("0")
    with pytest.raises(HmuError):
        parse_steps("1,x")
    with pytest.raises(HmuError, match="budget"):
        RLConfig(budget=0).check()
    with pytest.raises(HmuError, match="budget"):
        FTConfig(budget=0).check()


def test_split_prompts_is_seeded_and_disjoint():
    ps = [Prompt(f"p{i}", 20) for i in range(10)]
    a, b = split_prompts(ps, held_out=0.2, seed=3)
    assert len(b) == 2 and len(a) == 8 and not {p.text for p in a} & {p.text for p in b}
    assert split_prompts(ps, held_out=0.2, seed=3) == (a, b)


def test_rollout_dict_roundtrip():
    ro = _rollout(_mask())
    back = Rollout.from_dict(ro.to_dict())
    assert all(torch.equal(getattr(ro, k), getattr(back, k)) for k in ro.to_dict())


# ------------------------------------------------------------------------------------------------ CLI errors
def _run_main(argv, capsys):
    from src.attacks.relearn import main

    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def test_cli_one_line_errors(synth_root, tmp_path, capsys):
    base = ["--models", "original=t2m_tiny", "--dataset_dir", str(synth_root.parent), "--checkpoints_dir",
            str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res")]
    rc, err = _run_main(base + ["--steps", "0"], capsys)
    assert rc != 0 and len(err) == 1 and "budget of 0" in err[0]
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    rc, err = _run_main(base + ["--prompts", str(empty)], capsys)
    assert rc != 0 and len(err) == 1 and "no prompt" in err[0]
    rc, err = _run_main(base + ["--tmr_name", "missing_tmr"], capsys)
    assert rc != 0 and len(err) == 1 and "TMR run" in err[0] and "not found" in err[0]
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").rglob("*.tar"))


def test_curve_plot_writes_a_png_and_table(tmp_path):
    import struct

    from src.attacks.relearn import curve_plot, curve_table

    s = {"mean": 0.5, "wilson": [0.3, 0.7], "k": 5, "decisions": 10}
    pts = [{"step": k, "time_s": 1.0 * k, "train_s": 0.5 * k, "leakage": {"forget": s, "implicit": s}}
           for k in (0, 10)]
    out = curve_plot({"original": pts, "uce": pts}, tmp_path / "c.png", set_name="forget")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (840, 480)   # IHDR width, height
    table = curve_table({"results": {"uce": {"relearn_rl": {"curve": pts}}}})
    assert "| uce | relearn_rl | 10 | 0.500 [0.300, 0.700] | 0.500 [0.300, 0.700] | 5 |" in table
