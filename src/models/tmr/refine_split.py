"""TMR refinement of a keyword split, two modes: upstream's precision filter and our recall-raising kNN.

A trained TMR run (``checkpoints/<dataset>/<tmr_name>``, see ``src.train.tmr``) embeds motions and texts in one space.
Reference texts: every caption line of the train split (lines that match a keyword are the concept's "forget
texts"), plus optional ``--tmr_prompts`` (a text file, one prompt a line, or a JSON list of strings /
``{"text", "tokens"}`` objects such as ``implicit_prompts.json``), labelled forget.

Modes (``--tmr_method``; alias ``--tmr_mode``):

``upstream_filter`` (the paper's; Mamiglia/hmu e8912ba ``scripts/utils/split_dataset.sh``)
    A PRECISION filter on the keyword forget set; nothing is added to it. For each keyword-forget motion the
    original generator makes ``--repeat_times`` (10) motions from its captions (line ``r mod n`` for repeat r, at the
    motion's own length; upstream: ``gen_t2m_dataset.py --cond_scale 4 --time_steps 10``); each generation retrieves
    its ``--max_rank`` (10) nearest reference texts, and counts as a hit when ANY of them is a forget text
    (upstream: ``jq 'select(.retrieval | any(.description | test(keywords; "i")))'``, then ``uniq -c`` per motion).
    Motions with at least ``--tmr_min_occurence`` (8) hits stay forget; 1 to 7 hits move to retain; 0 hits are
    DROPPED from both files (upstream's ``awk '$1 < 8'`` only sees motions with a hit). Upstream's generation and
    retrieval scripts (``gen_t2m_dataset.py``, TMR's ``batch_motion_retrieval.py``) are not in the public snapshots,
    so two choices here are ours: which captions are generated from (above) and the text gallery (the train
    captions, with the motion's own caption lines left out, so a generation is not kept for retrieving the caption it
    was generated from).
``knn`` (ours, recall-raising)
    Every keyword-RETAIN motion (the real one, not a generation) -> its ``max_rank`` most similar reference texts,
    its own captions left out; it moves to forget when at least ``--tmr_min_occurence`` are forget texts. Nothing
    leaves the forget set, so precision cannot rise above the keyword split's; the point is the motions whose captions
    describe the concept without a keyword ("lashes out with his left foot"). Defaults ``--max_rank 20
    --tmr_min_occurence 8``, chosen on synth's TRAIN split by F1 over knn max_rank {5, 10, 20} x every threshold and
    vote max_rank {10, 25, 50, 100}.
``vote``
    prompt -> its ``max_rank`` most similar motions of the split; score = how many forget prompts retrieved the
    motion. The count grows with the number of prompts, so the threshold must be re-tuned per dataset.

Measured on synth's test split (ground truth labels.json): ``python -m bench.tmr_split`` writes
``docs/results/tmr_split/tmr_split.json``, rendered into README.md's "Keyword and TMR splits" table.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.common.errors import HmuError

log = logging.getLogger(__name__)

METHODS = ("knn", "vote", "upstream_filter")
# upstream split_dataset.sh defaults of its filter: --max_rank 10 --tmr_min_occurence 8 --repeat_times 10
UPSTREAM_FILTER = {"max_rank": 10, "min_occurence": 8, "repeat_times": 10}


# ---------------------------------------------------------------------------------------------------------------------
# Pure scoring (similarity matrices in, integer scores out)

def _top_k_mask(sims: np.ndarray, k: int) -> np.ndarray:
    """(N, M) -> (N, M) bool, True on each row's ``k`` largest entries (stable: earlier columns win ties)."""
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    mask = np.zeros(sims.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def knn_scores(sims_mt: np.ndarray, text_is_forget: np.ndarray, *, max_rank: int,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """(M motions, P texts) similarities -> (M,) number of forget texts among each motion's top ``max_rank`` texts.

    ``exclude`` (M, P) bool removes texts from a motion's candidates (its own captions).
    """
    sims = np.asarray(sims_mt, dtype=np.float64)
    is_forget = np.asarray(text_is_forget, dtype=bool)
    if sims.ndim != 2 or is_forget.shape != (sims.shape[1],):
        raise HmuError(f"knn_scores: similarities {sims.shape} and text labels {is_forget.shape} do not agree")
    if max_rank < 1:
        raise HmuError(f"--max_rank must be >= 1, got {max_rank}")
    if exclude is not None:
        sims = np.where(np.asarray(exclude, dtype=bool), -np.inf, sims)
    top = _top_k_mask(sims, max_rank) & np.isfinite(sims)
    return (top & is_forget[None]).sum(axis=1)


def vote_scores(sims_pm: np.ndarray, *, max_rank: int) -> np.ndarray:
    """(P prompts, M motions) similarities -> (M,) number of prompts that rank each motion in their top ``max_rank``."""
    sims = np.asarray(sims_pm, dtype=np.float64)
    if sims.ndim != 2:
        raise HmuError(f"vote_scores: similarities must be 2-D, got {sims.shape}")
    if max_rank < 1:
        raise HmuError(f"--max_rank must be >= 1, got {max_rank}")
    if sims.shape[0] == 0:
        return np.zeros(sims.shape[1], dtype=np.int64)
    return _top_k_mask(sims, max_rank).sum(axis=0)


def refine_split(ids: Sequence[str], forget: Sequence[str], scores: Mapping[str, float], *,
                 min_occurence: float) -> tuple[list[str], list[str], list[str]]:
    """Keyword forget ids + retain ids scoring >= ``min_occurence`` -> (forget, retain, added), all in ``ids`` order."""
    kw = set(forget)
    added = {i for i in ids if i not in kw and scores.get(i, -math.inf) >= min_occurence}
    new_forget = [i for i in ids if i in kw or i in added]
    retain = [i for i in ids if i not in kw and i not in added]
    return new_forget, retain, [i for i in ids if i in added]


def filter_hits(sims_gt: np.ndarray, text_is_forget: np.ndarray, owner: Sequence[str], *, max_rank: int,
                exclude: np.ndarray | None = None) -> dict[str, int]:
    """(G generations, P texts) similarities, the motion id each generation came from -> {id: generations whose top
    ``max_rank`` texts hold at least one forget text} (upstream's per-record ``any``, counted per motion)."""
    if len(owner) != np.asarray(sims_gt).shape[0]:
        raise HmuError(f"filter_hits: {len(owner)} owners for {np.asarray(sims_gt).shape[0]} generations")
    per_gen = knn_scores(sims_gt, text_is_forget, max_rank=max_rank, exclude=exclude) > 0
    hits = {i: 0 for i in owner}
    for i, h in zip(owner, per_gen.tolist()):
        hits[i] += int(h)
    return hits


def reference_hit_rule(keywords: Sequence[str], match: str, method: str):
    """(raw caption line, caption text) -> does this reference text name the concept? ``upstream_filter``: upstream's
    ``jq test(keywords; "i")`` on the retrieved description, a case-insensitive regular expression over the caption
    text; the other methods: the keyword split's own rule (``match``) on the whole line."""
    import re

    if method == "upstream_filter":
        try:
            pattern = re.compile("|".join(keywords), re.IGNORECASE)
        except re.error as exc:
            raise HmuError(f"keywords {'|'.join(keywords)!r} are not a valid regular expression ({exc})") from None
        return lambda line, text: pattern.search(text) is not None
    from src.data.keywords import line_matcher

    matcher = line_matcher(keywords, match)
    return lambda line, text: matcher(line)


def upstream_filter(ids: Sequence[str], forget: Sequence[str], hits: Mapping[str, int], *,
                    min_occurence: int) -> tuple[list[str], list[str], list[str]]:
    """Upstream's 3-way rule on the keyword forget set -> (forget, retain, dropped), in ``ids`` order.

    forget: keyword-forget ids with ``hits >= min_occurence``; retain: every other id that is not keyword-forget, plus
    keyword-forget ids with 1 <= hits < min_occurence; dropped: keyword-forget ids with no hit (absent ids: 0).
    """
    kw = set(forget)
    h = {i: int(hits.get(i, 0)) for i in kw}
    new_forget = [i for i in ids if i in kw and h[i] >= max(min_occurence, 1)]  # 0 hits: dropped, whatever the bar
    retain = [i for i in ids if i not in kw or 0 < h[i] < min_occurence]
    dropped = [i for i in ids if i in kw and h[i] == 0]
    return new_forget, retain, dropped


# ---------------------------------------------------------------------------------------------------------------------
# Ground truth (synth labels.json)

def implicit_cases(labels: Mapping, concept: str, ids: Sequence[str], keyword_forget: Sequence[str]) -> list[str]:
    """Truly-``concept`` motions of ``ids`` that the keyword split left in retain (their captions lack a keyword)."""
    motions = labels.get("motions", labels)
    kw = set(keyword_forget)
    return [i for i in ids if i not in kw and concept in (motions.get(i, {}).get("concepts") or ())]


def tmr_quality_lines(labels: Mapping, concept: str, ids: Sequence[str], keyword_forget: Sequence[str],
                      refined_forget: Sequence[str]) -> list[str]:
    """Precision/recall of keyword-only vs TMR-refined forget sets and the implicit cases recovered, as text lines."""
    from src.data.keywords import split_quality

    def fmt(x: float) -> str:
        return "  n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"

    lines = []
    for name, forget in (("keyword", keyword_forget), ("tmr", refined_forget)):
        q = split_quality(forget, labels, concept, ids=ids)
        lines.append(f"   {name:>9}: precision {fmt(q['precision'])}  recall {fmt(q['recall'])}  "
                     f"(tp {q['tp']}, fp {q['fp']}, fn {q['fn']}, n {q['n']})")
    missed = implicit_cases(labels, concept, ids, keyword_forget)
    got = set(refined_forget)
    lines.append(f"   implicit cases (true '{concept}', no keyword): {len(missed)}, recovered by TMR "
                 f"{sum(i in got for i in missed)}")
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Prompts

def read_prompt_tokens(path: str | os.PathLike, vocabulary) -> list[list[str]]:
    """A prompt file -> token lists: ``.json`` (strings or objects with ``text``/``tokens``) or text (one per line)."""
    from src.models.tmr.text import tokens_from_text

    p = Path(path)
    if not p.is_file():
        raise HmuError(f"--tmr_prompts file not found: {p}")
    raw = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HmuError(f"--tmr_prompts {p} is not valid JSON ({exc})") from None
        if not isinstance(items, list):
            raise HmuError(f"--tmr_prompts {p} must hold a JSON list")
    else:
        items = [s.strip() for s in raw.split("\n") if s.strip()]
    out = []
    for k, it in enumerate(items):
        if isinstance(it, str):
            out.append(tokens_from_text(it, vocabulary))
        elif isinstance(it, Mapping) and isinstance(it.get("tokens"), list) and it["tokens"]:
            out.append([str(t) for t in it["tokens"]])
        elif isinstance(it, Mapping) and isinstance(it.get("text"), str):
            out.append(tokens_from_text(it["text"], vocabulary))
        else:
            raise HmuError(f"--tmr_prompts {p}: item {k} is neither a string nor an object with 'text' or 'tokens'")
    if not out:
        raise HmuError(f"--tmr_prompts {p} holds no prompt")
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The refiner used by ``python -m src.data.split --tmr``

@dataclass
class TMRRefiner:
    """Loaded TMR + reference texts; ``refiner(split_name, keyword_split) -> refined KeywordSplit``."""

    model: Any
    text_side: Any
    root: Path
    mean: np.ndarray
    std: np.ndarray
    max_motion_length: int
    method: str
    max_rank: int
    min_occurence: float
    ref_owner: list[str]          # train id of each reference text ('' for --tmr_prompts lines)
    ref_is_forget: np.ndarray     # (P,) bool
    ref_latents: Any              # (P, D) torch
    generate: Any = None          # upstream_filter: (captions, lengths) -> raw features (T, D) each
    repeat_times: int = 10        # upstream_filter: generations per keyword-forget motion
    last_dropped: list[str] = field(default_factory=list)
    _motion_cache: dict[str, Any] = field(default_factory=dict)
    last_scores: dict[str, float] = field(default_factory=dict)
    ref_captions: list[str] = field(default_factory=list)  # caption text of each reference (prompt lines as given)

    def feature_latents(self, feats: Sequence[np.ndarray]):
        """Raw motion features (T_i, D) -> mean latents (N, latent): cut to ``max_motion_length``, normalised by the
        run's statistics, encoded by TMR."""
        from src.models.tmr.encode import encode_motions

        return encode_motions(self.model, [((np.asarray(f)[:self.max_motion_length] - self.mean) / self.std)
                                           .astype(np.float32) for f in feats])

    def motion_latents(self, ids: Sequence[str]):
        """Mean motion latents (N, D) for ids, each encoded once per process (splits overlap: all, train_val)."""
        import torch

        from src.data.humanml3d import read_motion

        todo = [i for i in dict.fromkeys(ids) if i not in self._motion_cache]
        if todo:
            lat = self.feature_latents([read_motion(self.root / "new_joint_vecs" / f"{i}.npy",
                                                    dim_pose=int(self.mean.shape[0])) for i in todo])
            self._motion_cache.update(zip(todo, lat))
        return torch.stack([self._motion_cache[i] for i in ids])

    def scores(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids),) scores of the chosen method for the motions ``ids``."""
        from src.models.tmr.model import get_sim_matrix

        m = self.motion_latents(ids)
        if self.method == "knn":
            sims = get_sim_matrix(m, self.ref_latents).cpu().double().numpy()
            owner = np.asarray(self.ref_owner, dtype=object)
            exclude = np.asarray(ids, dtype=object)[:, None] == owner[None, :]
            return knn_scores(sims, self.ref_is_forget, max_rank=self.max_rank, exclude=exclude)
        prompts = self.ref_latents[np.flatnonzero(self.ref_is_forget)]
        sims = get_sim_matrix(prompts, m).cpu().double().numpy()
        return vote_scores(sims, max_rank=self.max_rank)

    def generation_hits(self, ids: Sequence[str]) -> dict[str, int]:
        """upstream_filter: {id: hits out of ``repeat_times`` generations} for the motions ``ids``."""
        import torch

        from src.data.humanml3d import read_captions, read_motion
        from src.models.tmr.model import get_sim_matrix

        if self.generate is None:
            raise HmuError("--tmr_method upstream_filter needs a generator (the original MoMask runs)")
        captions, lengths, owner = [], [], []
        for i in ids:
            caps = [c.text for c in read_captions(self.root / "texts" / f"{i}.txt")] or [""]
            n = len(read_motion(self.root / "new_joint_vecs" / f"{i}.npy", dim_pose=int(self.mean.shape[0])))
            for r in range(self.repeat_times):
                captions.append(caps[r % len(caps)])
                lengths.append(min(n, self.max_motion_length))
                owner.append(i)
        if not captions:
            return {}
        lat = self.feature_latents(self.generate(captions, lengths))
        sims = get_sim_matrix(torch.stack(list(lat)) if isinstance(lat, (list, tuple)) else lat,
                              self.ref_latents).cpu().double().numpy()
        ref_owner = np.asarray(self.ref_owner, dtype=object)
        exclude = np.asarray(owner, dtype=object)[:, None] == ref_owner[None, :]
        return filter_hits(sims, self.ref_is_forget, owner, max_rank=self.max_rank, exclude=exclude)

    def __call__(self, split_name: str, naive, *, ids: Sequence[str] | None = None):
        """Refine one keyword split; ``ids`` (the split list) fixes the output order, else forget-then-retain."""
        from src.data.keywords import KeywordSplit

        missing = set(naive.missing)
        ids = list(ids) if ids is not None else list(naive.forget) + list(naive.retain)
        kw = set(naive.forget)
        if self.method == "upstream_filter":
            hits = self.generation_hits([i for i in ids if i in kw and i not in missing])
            self.last_scores = {k: float(v) for k, v in hits.items()}
            forget, retain, dropped = upstream_filter(ids, naive.forget, hits, min_occurence=int(self.min_occurence))
            self.last_dropped = dropped
            log.info("%s: TMR upstream filter kept %d of %d keyword-forget motions, moved %d to retain, dropped %d",
                     split_name, len(forget), len(naive.forget), len(naive.forget) - len(forget) - len(dropped),
                     len(dropped))
            return KeywordSplit(forget, retain, list(naive.missing))
        # knn scores each retain motion on its own; vote retrieves from the whole split, so a retain motion has to
        # out-rank the keyword-forget motions to be counted.
        gallery = [i for i in ids if i not in missing and (self.method == "vote" or i not in kw)]
        s = self.scores(gallery) if gallery else np.zeros(0)
        self.last_scores = {i: v for i, v in zip(gallery, s.tolist()) if i not in kw}
        forget, retain, added = refine_split(ids, naive.forget, self.last_scores, min_occurence=self.min_occurence)
        log.info("%s: TMR %s moved %d of %d retain motions to forget", split_name, self.method, len(added),
                 len(naive.retain))
        return KeywordSplit(forget, retain, list(naive.missing))


def build_refiner(*, run_dir: str | os.PathLike, root: str | os.PathLike, glove_dir: str | os.PathLike,
                  keywords: Sequence[str], match: str = "word", method: str = "knn", max_rank: int = 20,
                  min_occurence: float = 8, prompts_file: str | os.PathLike | None = None,
                  max_motion_length: int = 196, train_split: str = "train", generate=None,
                  repeat_times: int = 10) -> TMRRefiner:
    """Load the TMR run strictly and embed the reference texts (train captions, keyword lines = forget, + prompts)."""
    from src.data.humanml3d import HumanML3DFolder
    from src.data.keywords import read_lines
    from src.data.word_vectorizer import load_word_vectorizer
    from src.models.tmr.load import load_tmr
    from src.models.tmr.text import WordVectorText
    from src.models.tmr.encode import encode_texts

    if method not in METHODS:
        raise HmuError(f"unknown --tmr_method '{method}' (known: {', '.join(METHODS)})")
    if max_rank < 1:
        raise HmuError(f"--max_rank must be >= 1, got {max_rank}")
    run_dir, root = Path(run_dir), Path(root)
    if not (run_dir / "config.json").is_file():
        raise HmuError(f"TMR run {run_dir} not found (train one: python -m src.train.tmr --dataset_name "
                       f"{root.name} --name {run_dir.name}; or pass --tmr_name)")
    model = load_tmr(run_dir, modules=("motion_encoder", "text_encoder"))
    cfg = json.loads((run_dir / "config.json").read_text())
    text_cfg = (cfg.get("data") or {}).get("text") or {}
    vec = load_word_vectorizer(glove_dir)
    if text_cfg.get("kind", "word_vectors") == "local_model":
        from src.common.paths import Paths
        from src.models.tmr.text_side import text_side_from_config

        text_side = text_side_from_config(text_cfg, Paths.default(), root.name)
    else:
        text_side = WordVectorText(vec)
    if model.text_encoder.nfeats != text_side.dim:
        raise HmuError(f"TMR run {run_dir} expects {model.text_encoder.nfeats}-d text features, its text side "
                       f"({text_cfg.get('kind', 'word_vectors')}) gives {text_side.dim}")
    wants_text = getattr(text_side, "wants_text", False)
    stats = run_dir / "stats"
    if (stats / "mean.npy").is_file() and (stats / "std.npy").is_file():
        mean, std = np.load(stats / "mean.npy", allow_pickle=False), np.load(stats / "std.npy", allow_pickle=False)
        from src.common.validate import check_mean_std

        check_mean_std(mean, std, mean_path=stats / "mean.npy", std_path=stats / "std.npy")
    else:
        mean, std = HumanML3DFolder(root).mean_std()

    is_hit = reference_hit_rule(keywords, match, method)
    from src.data.humanml3d import parse_caption_line

    owner, tokens, is_forget, captions = [], [], [], []
    split_file = root / f"{train_split}.txt"
    if not split_file.is_file():
        raise HmuError(f"split list not found: {split_file} (the reference captions come from it)")
    for mid in [s.strip() for s in split_file.read_text(encoding="utf-8").split("\n") if s.strip()]:
        for k, line in enumerate(read_lines(root / "texts" / f"{mid}.txt") or []):
            if not line.strip():
                continue
            cap = parse_caption_line(line, where=f"{root / 'texts' / mid}.txt:{k + 1}")
            owner.append(mid)
            tokens.append(cap.text if wants_text else list(cap.tokens))
            captions.append(cap.text)
            is_forget.append(is_hit(line, cap.text))
    if prompts_file is not None:
        extra = read_prompt_tokens(prompts_file, vec)
        owner += [""] * len(extra)
        tokens += extra
        captions += [e if isinstance(e, str) else " ".join(e) for e in extra]
        is_forget += [True] * len(extra)
    if not any(is_forget):
        raise HmuError(f"no train caption of {root} mentions a keyword ({', '.join(keywords)}) and no --tmr_prompts "
                       "given: nothing to retrieve with")
    device = next(model.parameters()).device
    latents = encode_texts(model, text_side, tokens).to(device)
    log.info("TMR refinement: %d reference texts (%d concept prompts) from %s", len(tokens), sum(is_forget),
             split_file.name)
    return TMRRefiner(model=model, text_side=text_side, root=root, mean=np.asarray(mean, np.float32),
                      std=np.asarray(std, np.float32), max_motion_length=max_motion_length, method=method,
                      max_rank=max_rank, min_occurence=min_occurence, ref_owner=owner,
                      ref_is_forget=np.asarray(is_forget, dtype=bool), ref_latents=latents, generate=generate,
                      repeat_times=repeat_times, ref_captions=captions)
