"""Does the concept come back? Attacks on an unlearned text-to-motion model, scored by ground-truth leakage.

- :mod:`.implicit`: prompts that describe the concept without its keywords (synth's labelled set, or a user file);
- :mod:`.adversarial`: projected gradient search in the text-conditioning space (B, clip_dim);
- :mod:`.inversion`: textual inversion (a new token embedding learnt from a few forget motions, model frozen);
- :mod:`.compositional`: the concept between allowed actions, judged per segment.

Every attack talks to the model through :class:`src.attacks.target.AttackTarget` (conditioning features in, motions
out) and to the ground truth through :class:`src.attacks.scoring.Judge`, so a toy pair with a known answer can stand in
for both in tests. Randomness comes from ``seed`` only (numpy/torch generators derived per stream).
"""
