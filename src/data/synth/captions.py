"""Caption grammars: HumanML3D-style sentences for a sequence of actions, tagged ``word/POS``.

Each action has a pool of verb phrases built from its parameters. Violent actions have *explicit* phrases (they use a
keyword of the ``violence`` concept: kick, punch, jab, hook, uppercut, boxing ...) and *implicit* ones that describe
the same movement without any keyword ("strikes the air with his left foot"). Some harmless phrases contain a keyword
as a substring or homonym ("beats a drum", "whitewashes a wall", "lifts boxes"), so keyword splits have false
positives. The ground truth is always the action, never the words.
"""
from __future__ import annotations

import re

from .lexicon import tag_word

# The violence keywords of assets/splits.json (HumanML3D and synth rows); tests check the two agree.
VIOLENCE_KEYWORDS = ("kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook")

SUBJECTS = (("a person", "his"), ("a person", "his"), ("a person", "their"), ("a man", "his"), ("a woman", "her"),
            ("someone", "his"), ("the person", "his"), ("a man", "his"))
COUNT = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}
SLOW = ("slowly", "at a slow pace", "gently")
FAST = ("quickly", "fast|ADV", "briskly")


def has_keyword(line: str, keywords=VIOLENCE_KEYWORDS) -> bool:
    """Case-insensitive substring test over a whole text line (stricter than both split matching modes)."""
    low = line.lower()
    return any(k in low for k in keywords)


def _adv(p: dict, rng) -> str:
    sp = p.get("speed", "normal")
    if sp == "slow":
        return " " + SLOW[rng.integers(len(SLOW))]
    if sp == "fast":
        return " " + FAST[rng.integers(len(FAST))]
    return ""


def _dir(d: str) -> list[str]:
    return {"forward": ["forward", "straight ahead", "ahead", "forwards"],
            "backward": ["backward", "backwards", "back"],
            "left": ["to the left|NOUN", "sideways to the left|NOUN"],
            "right": ["to the right|NOUN", "sideways to the right|NOUN"]}[d]


# ----------------------------------------------------------------------------------------------- phrase pools
# A pool is a list of (template, kind); kind "x" = explicit violent, "i" = implicit violent, "" = harmless.
# Placeholders: {his} possessive, {side} / {oside} the limb side and its opposite, {n} a count ("twice").

def pool(action: str, p: dict) -> list[tuple[str, str]]:
    return _POOLS[action](p)


def _walk(p):
    d = p["direction"]
    if d.startswith("circle"):
        way = "counterclockwise" if d.endswith("left") else "clockwise"
        out = ["walks in a circle", f"walks {way} in a circle", "walks around in a circle", f"walks in a circle to the {d[7:]}|NOUN"]
    else:
        out = [f"walks {x}" for x in _dir(d)] + [f"takes a few steps|NOUN {_dir(d)[0]}", f"moves {_dir(d)[0]}"]
        if d == "forward":
            out += ["strolls forward", "walks", "paces forward", "marches forward"]
    if p.get("style") == "arms_still":
        out += [f"walks {_dir(d)[0] if not d.startswith('circle') else 'in a circle'} with thumbs hooked in {{his}} belt",
                "walks with {his} hands in {his} pockets"]
    return [(x + "{adv}", "") for x in out]


def _run(p):
    d = p["direction"]
    if d == "in_place":
        out = ["runs in place", "jogs in place", "runs on the spot|NOUN"]
    elif d.startswith("circle"):
        out = ["runs in a circle", "jogs in a circle", f"runs around in a circle to the {d[7:]}|NOUN"]
    else:
        out = ["runs forward", "jogs forward", "runs ahead", "runs"]
        if p["speed"] == "fast":
            out += ["sprints forward", "dashes forward"]
    return [(x + ("{adv}" if p["speed"] == "normal" else ""), "") for x in out]


def _jump(p):
    if p["style"] == "repeated":
        out = ["jumps up and down", f"jumps {COUNT[p['count']]}", f"jumps up and down {COUNT[p['count']]}",
               f"hops up and down {COUNT[p['count']]}"]
    elif p["style"] == "forward":
        out = ["jumps forward", "leaps forward", "jumps ahead", "makes a big jump|NOUN forward"]
    else:
        out = ["jumps up", "jumps in place", "jumps straight up", "leaps up into the air"]
    return [(x, "") for x in out]


def _hop(p):
    fwd = " forward" if p["direction"] == "forward" else ""
    return [(x, "") for x in (f"hops{fwd} on {{his}} {{side}} leg", f"hops{fwd} on one foot",
                              f"hops on the {{side}} foot {COUNT[p['count']]}", f"skips{fwd} on {{his}} {{side}} foot")]


def _crawl(p):
    return [(x + "{adv}", "") for x in ("crawls forward", "crawls on hands and knees", "creeps forward on all fours",
                                        "crawls on the floor", "crawls on all fours")]


def _squat(p):
    n = p["count"]
    out = ["squats down", "does a squat|NOUN", "crouches down and stands back up", "bends {his} knees into a squat|NOUN"]
    if n > 1:
        out = [f"squats {COUNT[n]}", f"does {['', '', 'two', 'three'][n]} squats|NOUN", f"squats down {COUNT[n]}",
               "squats up|ADV and down|ADV repeatedly"]
    return [(x + "{adv}", "") for x in out]


def _sit(p):
    return [(x, "") for x in {
        "chair_stay": ["sits down", "sits down on a chair", "takes a seat", "sits down on a seat"],
        "chair_up": ["sits down and stands back up", "sits on a chair and gets up again", "sits down then stands up|ADP"],
        "floor": ["sits down on the floor", "sits on the ground", "sits down on the ground"]}[p["style"]]]


def _turn(p):
    if p["angle"] == "around":
        out = ["turns around", "turns around to the {side}|NOUN", "turns to face the other way", "spins around"]
    else:
        out = ["turns to the {side}|NOUN", "turns {side}|ADV", "turns ninety degrees to the {side}|NOUN"]
    return [(x, "") for x in out]


def _side_step(p):
    return [(x, "") for x in ("steps to the {side}|NOUN", "steps sideways to the {side}|NOUN",
                              "shuffles sideways to the {side}|NOUN", "takes a few steps|NOUN to the {side}|NOUN",
                              "side|NOUN steps to the {side}|NOUN")]


def _stand(p):
    return [(x, "") for x in {
        "still": ["stands still", "stands in place", "stands and waits", "waits"],
        "look": ["looks around", "looks left|ADV and right|ADV", "stands and looks around"],
        "shift": ["shifts {his} weight from side to side", "sways from side to side", "stands and sways"]}[p["style"]]]


def _wave(p):
    if p["both"]:
        out = ["waves both hands", "waves with both hands above {his} head", "waves both arms"]
    else:
        out = ["waves {his} {side} hand", "waves with the {side} hand", "waves hello|INTJ with the {side} hand",
               "raises {his} {side} arm and waves", "waves goodbye|INTJ"]
    return [(x, "") for x in out]


def _throw(p):
    out = ["throws a ball", "throws something with {his} {side} hand", "tosses a ball", "pitches a ball with the {side} arm"]
    out += ["throws an object overhand"] if p["style"] == "overhand" else ["tosses a ball underhand", "throws underhand"]
    return [(x, "") for x in out]


def _dance(p):
    return [(x, "") for x in {
        "sway": ["dances", "sways to the music", "dances with {his} arms up|ADV", "dances to the beat",
                 "dances to the beat of the music", "grooves to the music"],
        "spin": ["spins around while dancing", "twirls around", "dances and spins around", "dances and twirls"],
        "bounce": ["dances energetically", "bounces to the music", "dances happily", "dances to the beat"]}[p["style"]]]


def _clap(p):
    return [(x, "") for x in ("claps {his} hands", "claps", f"claps {COUNT[p['count']]}", "applauds",
                              "claps {his} hands together")]


def _bow(p):
    return [(x, "") for x in ("bows", "bows forward", "takes a bow|NOUN", "bends forward at the waist")]


def _stretch(p):
    return [(x, "") for x in {
        "up": ["stretches {his} arms up|ADV", "reaches up|ADV high", "stretches both arms above {his} head"],
        "side": ["stretches to the {side}|NOUN", "leans to the {side}|NOUN with {his} arms raised",
                 "stretches {his} arms up|ADV and leans to the {side}|NOUN"],
        "arms_out": ["stretches {his} arms out to the sides", "spreads {his} arms wide",
                     "stretches {his} arms out|ADV"]}[p["style"]]]


def _drum(p):
    return [(x, "") for x in ("beats a drum", "plays the drums", "drums with both hands", "taps a rhythm with both hands",
                              "plays a drum", "pounds on a drum", "hits the drums")]


def _paint(p):
    return [(x, "") for x in ("whitewashes a wall", "paints a wall", "paints a wall with {his} {side} hand",
                              "brushes paint onto a wall", "paints with broad strokes")]


def _hitchhike(p):
    return [(x, "") for x in ("hitchhikes", "sticks out a thumb to|PART hitch a ride", "holds out {his} {side} arm",
                              "holds out the {side} arm with a thumb up|ADV", "hitchhikes by the road")]


def _lift(p):
    return [(x, "") for x in ("picks up|ADP a box", "lifts boxes off the floor", "bends down and picks something up|ADP",
                              "lifts a heavy object from the ground", "picks up|ADP boxes", "lifts a box")]


def _kick(p):
    n, st = p["count"], p["style"]
    x = ["kicks with {his} {side} leg", "kicks with the {side} foot", "kicks the air", "kicks high|ADV with {his} {side} foot"]
    x += {"front": ["does a front kick with the {side} leg", "kicks {his} {side} leg forward"],
          "side": ["does a side kick with {his} {side} leg", "kicks sideways with the {side} leg"],
          "roundhouse": ["does a roundhouse kick with the {side} leg", "performs a roundhouse kick"]}[st]
    if n > 1:
        x += [f"kicks {COUNT[n]} with the {{side}} foot", f"kicks {COUNT[n]}"]
    i = ["strikes the air with {his} {side} foot", "lashes out with {his} {side} foot",
         "attacks with a high {side} leg", "swings {his} {side} leg up|ADV at an imaginary opponent"]
    i += {"front": ["thrusts {his} {side} leg forward forcefully", "thrusts the {side} foot forward"],
          "side": ["snaps {his} {side} leg out|ADP sideways", "thrusts the {side} foot out|ADV to the side"],
          "roundhouse": ["swings {his} {side} leg around in a high arc", "strikes with a sweeping {side} leg"]}[st]
    return [(s, "x") for s in x] + [(s, "i") for s in i]


def _punch(p):
    n = p["count"]
    x = ["punches with {his} {side} hand", "punches forward", "throws a punch with {his} {side} fist", "throws a {side} punch",
         "is boxing", "boxes the air", "shadowboxes"]
    if n > 1:
        x += [f"punches the air {COUNT[n]}", f"punches {COUNT[n]}"]
    if p["alternate"]:
        x += ["throws punches with both hands", "punches with both fists"]
    i = ["swings a fist at someone", "strikes forward with {his} {side} fist", "thrusts {his} {side} fist at an opponent",
         "shoots {his} {side} fist straight ahead", "fights an invisible opponent with {his} fists",
         "attacks with {his} {side} arm"]
    return [(s, "x") for s in x] + [(s, "i") for s in i]


def _jab(p):
    n = p["count"]
    x = ["jabs with {his} {side} hand", "throws a quick jab", "does a {side} jab", "jabs forward"]
    if n > 1:
        x += [f"jabs {COUNT[n]}", f"throws {['', '', 'two', 'three'][n]} quick jabs"]
    i = ["snaps out|ADP short quick strikes with {his} {side} fist", "fires fast blows with the {side} hand",
         "throws quick strikes with {his} {side} fist"]
    return [(s, "x") for s in x] + [(s, "i") for s in i]


def _hook(p):
    x = ["throws a {side} hook", "swings a hook with {his} {side} arm", "does a hook punch with the {side} hand"]
    i = ["swings {his} {side} fist around in a wide arc at someone", "strikes sideways with a bent {side} arm"]
    return [(s, "x") for s in x] + [(s, "i") for s in i]


def _uppercut(p):
    x = ["throws an uppercut with {his} {side} hand", "does a {side} uppercut", "punches upward with an uppercut"]
    i = ["drives {his} {side} fist upward into an imaginary chin", "strikes upward with the {side} fist"]
    return [(s, "x") for s in x] + [(s, "i") for s in i]


def _gesture(p):
    st = p["style"]
    if st == "bye":
        out = (["waves goodbye|INTJ with both hands", "waves bye|INTJ with both hands"] if p["both"] else
               ["waves goodbye|INTJ with the {side} hand", "waves bye|INTJ with {his} {side} hand", "says goodbye|INTJ",
                "waves {his} {side} hand at {his} face|NOUN"])
    elif st == "point":
        where = {"front": "forward", "side": "to the {side}|NOUN", "diagonal": "ahead to the {side}|NOUN"}[p["aim"]]
        out = [f"points {where}", f"points {where} with {{his}} {{side}} hand", "shows the way with {his} {side} arm",
               f"gestures {where}"]
    elif st == "sweep":
        out = ["shows the way with a sweep|NOUN of {his} {side} arm", "gestures to the {side}|NOUN with an open hand",
               "sweeps {his} {side} arm out|ADP to the side", "invites someone in with {his} {side} hand"]
    elif st == "clasp":
        out = ["holds {his} hands together", "clasps {his} hands in front|NOUN of {his} chest",
               "stands with {his} hands together"]
    elif st == "call":
        out = ["calls out|ADP with {his} hands at {his} mouth", "cups {his} hands around {his} mouth and calls",
               "shouts with {his} hands at {his} mouth"]
    else:
        out = ["folds {his} arms", "crosses {his} arms", "stands with {his} arms crossed"]
    if p["bow"] > 0.2:
        out = [f"{x} and bows" for x in out]
    return [(x, "") for x in out]


def _carry_walk(p):
    way = _dir(p["direction"])[0]
    out = {"carry": [f"walks {way} carrying a box", f"walks {way} with {{his}} arms bent", f"carries a box {way}"],
           "bent_swing": [f"walks {way} swinging {{his}} bent arms", f"marches {way} swinging {{his}} arms"],
           "hips": [f"walks {way} with {{his}} hands on {{his}} hips",
                    f"steps {way} with {{his}} hands on {{his}} hips"]}[p["arms"]]
    return [(x + "{adv}", "") for x in out]


_POOLS = {"walk": _walk, "run": _run, "jump": _jump, "hop": _hop, "crawl": _crawl, "squat": _squat, "sit": _sit,
          "turn": _turn, "side_step": _side_step, "stand": _stand, "wave": _wave, "throw": _throw, "dance": _dance,
          "clap": _clap, "bow": _bow, "stretch": _stretch, "drum": _drum, "paint": _paint, "hitchhike": _hitchhike,
          "lift": _lift, "kick": _kick, "punch": _punch, "jab": _jab, "hook": _hook, "uppercut": _uppercut,
          "gesture": _gesture, "carry_walk": _carry_walk}

# Held-out implicit phrasings: never used in training captions (implicit_prompts.json).
HELDOUT = {
    "kick": ["delivers a blow with {his} {side} foot", "sends {his} {side} foot flying at an attacker",
             "strikes out|ADP at an enemy with the {side} leg", "lunges at an opponent foot first|ADV"],
    "punch": ["smacks an attacker with a closed fist", "clobbers an opponent with {his} {side} hand",
              "lands a hard blow with the {side} fist", "delivers a blow to an enemy with {his} fist"],
    "jab": ["pokes quick blows at an opponent with the {side} fist", "fires short strikes at an attacker"],
    "hook": ["swings a curved blow at an attacker with the {side} arm", "smacks an enemy from the side|NOUN"],
    "uppercut": ["drives a rising blow with the {side} fist", "smacks an opponent upward under the chin"],
}

# Plain-English paraphrases OUTSIDE the caption grammar (issue 15): written by hand, no violence keyword, and (apart
# from articles and prepositions) no word of the caption lexicon, so only a text encoder that knows English can
# map them to the action. Used as implicit prompts only, never as training captions; they carry no POS tokens (the
# evaluator tags them with spaCy, or the fallback tagger). tests/test_text_english.py checks both properties.
FREE_TEXT = {
    "kick": ["the fighter plants a shin into a rival's ribs", "a martial artist boots a foe in the belly",
             "a karateka whips a shin toward a foe's thigh"],
    "punch": ["a brawler socks a rival on the jaw", "the fighter unleashes a haymaker",
              "a pugilist slugs a foe with bare knuckles"],
    "jab": ["a fighter flicks brisk knuckle shots toward a foe", "the pugilist pops a rival with snappy little shots"],
    "hook": ["a brawler wheels a looping haymaker into a rival's temple"],
    "uppercut": ["a fighter rams bare knuckles skyward into a foe's jaw"],
}
# the only words FREE_TEXT shares with the caption lexicon: articles and prepositions
FREE_TEXT_FUNCTION_WORDS = frozenset({"a", "an", "the", "in", "into", "on", "with", "at", "to", "of", "toward"})


# ----------------------------------------------------------------------------------------------- rendering
_TOKEN = re.compile(r"([A-Za-z]+)(?:\|([A-Z]+))?")


def fill(template: str, p: dict, his: str, rng) -> str:
    side = p.get("side") or "left"
    return template.format(his=his, side=side, oside="right" if side == "left" else "left",
                           adv=_adv(p, rng) if "{adv}" in template else "")


def render(marked: str) -> tuple[str, list[str]]:
    """Marked sentence ("turns left|ADV.") -> (caption text, ['turn/VERB', 'left/ADV'])."""
    text = _TOKEN.sub(lambda m: m.group(1), marked)
    tokens = [tag_word(m.group(1), m.group(2)) for m in _TOKEN.finditer(marked)]
    return text, tokens


def sentence(subject: str, phrases: list[str], rng) -> str:
    """Join 1-3 verb phrases into one marked sentence."""
    n = len(phrases)
    if n == 1:
        body = phrases[0]
    elif n == 2:
        form = int(rng.integers(4))
        body = [f"{phrases[0]}, then {phrases[1]}", f"{phrases[0]} and then {phrases[1]}",
                f"first|ADV {phrases[0]}, then {phrases[1]}", f"{phrases[0]} and {phrases[1]}"][form]
    else:
        form = int(rng.integers(3))
        body = [f"{phrases[0]}, {phrases[1]}, and then {phrases[2]}",
                f"first|ADV {phrases[0]}, then {phrases[1]}, and finally {phrases[2]}",
                f"{phrases[0]}, then {phrases[1]}, then {phrases[2]}"][form]
    return f"{subject} {body}."


def caption(actions: list[tuple[str, dict]], rng, *, implicit: bool, decoy_p: float = 0.2) -> tuple[str, list[str]]:
    """One caption for a sequence of (action, params). ``implicit``: violent actions only by implicit phrases and the
    whole line free of violence keywords; otherwise violent actions use explicit phrases. A harmless action may use a
    phrase holding a keyword substring ("beats a drum") only with probability ``decoy_p`` per caption."""
    subject, his = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    for _ in range(50):
        phrases = []
        for name, p in actions:
            cands = pool(name, p)
            want = "i" if implicit else "x"
            if any(k for _, k in cands):
                cands = [c for c in cands if c[1] == want]
            elif implicit or rng.random() >= decoy_p:
                cands = [c for c in cands if not has_keyword(c[0])] or cands
            t, _ = cands[int(rng.integers(len(cands)))]
            phrases.append(fill(t, p, his, rng))
        text, tokens = render(sentence(subject, phrases, rng))
        if not implicit or not has_keyword(text + "#" + " ".join(tokens)):
            return text, tokens
    raise RuntimeError(f"could not phrase {actions} without violence keywords")


def line(text: str, tokens: list[str]) -> str:
    """HumanML3D caption line: ``caption#word/POS ...#0.0#0.0``."""
    return f"{text}#{' '.join(tokens)}#0.0#0.0"


def words(text: str) -> list[str]:
    """Lowercase letter runs of a caption (the surface words)."""
    return re.findall(r"[a-z]+", text.lower())
