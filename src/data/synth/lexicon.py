"""Every word the synth grammars use: surface form -> (token word, Universal POS tag), tagged as HumanML3D tags its
captions (spaCy: lemma for NOUN/VERB, the lowercase text otherwise)."""
from __future__ import annotations

# Verbs: lemma followed by the inflected forms the grammars use ("lemma:form,form").
_VERBS = """
walk:walks stroll:strolls step:steps take:takes move:moves march:marches pace:paces run:runs,running jog:jogs
sprint:sprints dash:dashes jump:jumps leap:leaps hop:hops skip:skips crawl:crawls creep:creeps squat:squats
crouch:crouches bend:bends sit:sits get:gets stand:stands turn:turns spin:spins rotate:rotates shuffle:shuffles
wait:waits look:looks shift:shifts sway:sways wave:waves raise:raises,raised throw:throws toss:tosses pitch:pitches
dance:dances,dancing twirl:twirls bounce:bounces groove:grooves clap:claps applaud:applauds bow:bows
stretch:stretches reach:reaches spread:spreads lean:leans beat:beats play:plays drum:drums tap:taps pound:pounds
hit:hits paint:paints whitewash:whitewashes brush:brushes hitchhike:hitchhikes stick:sticks hold:holds hitch:hitch
pick:picks lift:lifts kick:kicks punch:punches box:boxes,boxing shadowbox:shadowboxes jab:jabs swing:swings,swinging
do:does perform:performs strike:strikes thrust:thrusts lash:lashes snap:snaps attack:attacks shoot:shoots
fight:fights fire:fires drive:drives deliver:delivers lunge:lunges send:sends smack:smacks clobber:clobbers
land:lands poke:pokes hook:hooked keep:keeps come:comes remain:remains face make:makes fly:flying
point:points show:shows gesture:gestures clasp:clasps call:calls cup:cups shout:shouts fold:folds cross:crosses,crossed
carry:carries,carrying say:says sweep:sweeps invite:invites
"""

_NOUNS = """
person man woman someone:PRON something:PRON leg:legs foot:feet arm:arms hand:hands fist:fists knee:knees
thumb:thumbs belt pocket:pockets waist head chin air opponent attacker enemy step:steps circle place kick
punch:punches jab:jabs hook uppercut roundhouse ball object drum:drums rhythm table wall stroke:strokes paint
ride road box:boxes floor ground chair seat music beat side:sides squat:squats time:times degree:degrees weight
pace four:NUM bow workout blow:blows strike:strikes arc fours:NUM spot thumb:thumbs way
mouth chest hip:hips bye sweep
"""

_OTHER = {
    "DET": "a an the his her their both all each another",
    "ADP": "with on in at to into from of by onto off around over before after like above behind across up down out under",
    "ADJ": "left right front side high low quick short fast wide bent imaginary invisible heavy closed straight "
           "slow broad few small big curved rising single one hard sweeping other open",
    "ADV": "forward forwards backward backwards back sideways ahead straight slowly quickly briskly gently then "
           "finally first up down again around twice once high hard energetically happily out upward counterclockwise "
           "clockwise away still repeatedly rhythmically together wide forcefully fast quick overhand underhand "
           "hello goodbye low",
    "NUM": "two three four five ninety",
    "CCONJ": "and or",
    "PRON": "someone something",
    "PART": "to",
    "AUX": "is",
    "SCONJ": "while",
}

# Surface forms whose tag depends on the phrase are written "word|TAG" in the grammars; these are the defaults.
_DEFAULT_POS = {"left": "ADJ", "right": "ADJ", "back": "ADV", "straight": "ADV", "high": "ADV", "hard": "ADV",
                "side": "NOUN", "up": "ADP", "down": "ADP", "around": "ADV", "to": "ADP", "fast": "ADV",
                "quick": "ADJ", "wide": "ADV", "low": "ADV", "four": "NUM", "once": "ADV",
                "one": "NUM", "out": "ADP", "over": "ADP", "step": "VERB", "steps": "VERB", "kick": "NOUN",
                "punch": "NOUN", "jab": "NOUN", "jabs": "VERB", "punches": "VERB", "strike": "NOUN",
                "strikes": "VERB", "boxes": "VERB", "hook": "NOUN", "squat": "NOUN", "squats": "VERB", "bow": "VERB",
                "beat": "NOUN", "beats": "VERB", "pace": "NOUN", "drums": "NOUN", "paint": "NOUN", "blows": "NOUN",
                "seat": "NOUN", "someone": "PRON", "something": "PRON", "hitch": "VERB", "hello": "INTJ",
                "goodbye": "INTJ", "still": "ADV", "first": "ADV", "box": "NOUN", "drum": "NOUN"}


def _build() -> dict[str, dict[str, str]]:
    """surface -> {POS: token word} (a surface may have several tags)."""
    lex: dict[str, dict[str, str]] = {}

    def put(surface, pos, token):
        lex.setdefault(surface, {})[pos] = token

    for item in _VERBS.split():
        lemma, _, forms = item.partition(":")
        put(lemma, "VERB", lemma)
        for f in filter(None, forms.split(",")):
            put(f, "VERB", lemma)
    for item in _NOUNS.split():
        lemma, _, rest = item.partition(":")
        if rest in ("PRON", "NUM"):
            put(lemma, rest, lemma)
            continue
        put(lemma, "NOUN", lemma)
        for f in filter(None, rest.split(",")):
            put(f, "NOUN", lemma)
    for pos, words in _OTHER.items():
        for w in words.split():
            put(w, pos, w)
    put("hello", "INTJ", "hello")
    put("goodbye", "INTJ", "goodbye")
    return lex


LEXICON = _build()


def tag_word(surface: str, pos: str | None = None) -> str:
    """``'kicks'`` -> ``'kick/VERB'``; ``pos`` picks among a word's tags (default: ``_DEFAULT_POS`` or its only tag)."""
    w = surface.lower()
    tags = LEXICON.get(w)
    if not tags:
        raise KeyError(f"synth lexicon has no entry for '{w}'")
    if pos is None:
        pos = _DEFAULT_POS.get(w) if len(tags) > 1 else next(iter(tags))
        if pos not in tags:
            raise KeyError(f"synth lexicon: default tag {pos} of '{w}' is not one of {sorted(tags)}")
    elif pos not in tags:
        # A phrase-specific tag: lemma for NOUN/VERB (taken from the word's other entries), the text otherwise.
        lemma = tags.get("NOUN", tags.get("VERB", w)) if pos in ("NOUN", "VERB") else w
        return f"{lemma}/{pos}"
    return f"{tags[pos]}/{pos}"
