"""The embedded default corpus: a seeded synthetic language pair.

Both languages are invented here (words are built from syllables), so the main
job runs anywhere without downloads. Translating needs more than a dictionary:

* word order: the source is SVO with prepositions and adjectives before the noun;
  the target is SOV with postpositions, the object marked by a particle, and
  adjectives after the noun in mirrored order;
* agreement: target determiners and adjectives agree with the noun's gender and
  number, nouns take a plural suffix, verbs agree with the subject's number.

`gloss` is the word-for-word baseline (dictionary lookup, source order, no
agreement); its BLEU shows how much of the task is more than a dictionary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_LEXICON_SEED = 20141  # the language itself never changes; data seeds only sample it

_SRC_ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "br",
    "dr",
    "fl",
    "gr",
    "kl",
    "pr",
    "sk",
    "st",
    "tr",
]
_SRC_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
# no source lemma ends in "s", so plural and 3rd-person "-s" are unambiguous
_SRC_CODAS = ["", "", "n", "m", "t", "k", "l", "rd", "st"]
_TGT_ONSETS = [
    "ch",
    "h",
    "j",
    "z",
    "x",
    "q",
    "y",
    "sh",
    "ts",
    "zh",
    "kh",
    "ny",
    "m",
    "n",
    "l",
    "t",
]
_TGT_VOWELS = ["a", "e", "i", "o", "u", "ao", "ei", "ia", "uo"]

_COUNTS = {"noun": 100, "verb": 30, "adj": 30, "adv": 12, "prep": 8}


@dataclass
class _Lexicon:
    src: dict[str, list[str]]  # part of speech -> source lemmas
    tgt: dict[str, str]  # source lemma -> target lemma
    gender: dict[str, str]  # source noun -> "m" | "f" (target side)
    transitive: dict[str, bool]


def _words(rng: random.Random, n: int, make, taken: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        w = make(rng)
        if w not in taken and len(w) > 2:
            taken.add(w)
            out.append(w)
    return out


def _src_word(rng: random.Random) -> str:
    syl = rng.choice([1, 2, 2, 3])
    return "".join(
        rng.choice(_SRC_ONSETS) + rng.choice(_SRC_VOWELS) for _ in range(syl)
    ) + rng.choice(_SRC_CODAS)


def _tgt_word(rng: random.Random) -> str:
    syl = rng.choice([2, 2, 3])
    return "".join(
        rng.choice(_TGT_ONSETS) + rng.choice(_TGT_VOWELS) for _ in range(syl)
    )


def _lexicon() -> _Lexicon:
    rng = random.Random(_LEXICON_SEED)
    src_taken = {"da", "dei", "un", "som", "and", "but"}
    tgt_taken: set[str] = set()
    src, tgt = {}, {}
    for pos, n in _COUNTS.items():
        src[pos] = _words(rng, n, _src_word, src_taken)
        for w, t in zip(src[pos], _words(rng, n, _tgt_word, tgt_taken)):
            tgt[w] = t
    gender = {w: rng.choice("mf") for w in src["noun"]}
    transitive = {w: rng.random() < 0.6 for w in src["verb"]}
    return _Lexicon(src, tgt, gender, transitive)


LEXICON = _lexicon()

# target function words, by gender+number
_DEF = {"m.sg": "lo", "f.sg": "la", "m.pl": "los", "f.pl": "las"}
_INDEF = {"m.sg": "ein", "f.sg": "eina", "m.pl": "sumi", "f.pl": "sume"}
_ADJ_SUFFIX = {"m.sg": "o", "f.sg": "a", "m.pl": "i", "f.pl": "e"}
_CONJ = {"and": "ka", "but": "demo"}
_OBJ_MARK = "wo"
_SRC_DET = {
    ("def", "sg"): "da",
    ("def", "pl"): "dei",
    ("indef", "sg"): "un",
    ("indef", "pl"): "som",
}


def _noun_phrase(rng: random.Random, max_adj: int) -> tuple[list[str], list[str], str]:
    lex = LEXICON
    noun = rng.choice(lex.src["noun"])
    number = "pl" if rng.random() < 0.35 else "sg"
    kind = "def" if rng.random() < 0.6 else "indef"
    adjs = rng.sample(lex.src["adj"], rng.choice([0, 0, 0, 1, 1, 2][: max_adj * 3 + 1]))
    agr = f"{lex.gender[noun]}.{number}"
    src = [_SRC_DET[kind, number], *adjs, noun + ("s" if number == "pl" else "")]
    det = (_DEF if kind == "def" else _INDEF)[agr]
    tgt_noun = lex.tgt[noun] + ("n" if number == "pl" else "")
    tgt = [det, tgt_noun] + [lex.tgt[a] + _ADJ_SUFFIX[agr] for a in reversed(adjs)]
    return src, tgt, number


def _clause(rng: random.Random, max_adj: int = 2) -> tuple[list[str], list[str]]:
    lex = LEXICON
    subj_s, subj_t, number = _noun_phrase(rng, max_adj)
    verb = rng.choice(lex.src["verb"])
    src = subj_s + [verb + ("s" if number == "sg" else "")]
    middle: list[str] = []
    if lex.transitive[verb]:
        obj_s, obj_t, _ = _noun_phrase(rng, max_adj)
        src += obj_s
        middle = obj_t + [_OBJ_MARK]
    if rng.random() < 0.3 or not lex.transitive[verb]:
        adv = rng.choice(lex.src["adv"])
        src.append(adv)
        middle.append(lex.tgt[adv])
    if rng.random() < 0.2:
        prep = rng.choice(lex.src["prep"])
        pp_s, pp_t, _ = _noun_phrase(rng, 1)
        src += [prep, *pp_s]
        middle = pp_t + [lex.tgt[prep]] + middle
    tgt = subj_t + middle + [lex.tgt[verb] + ("a" if number == "sg" else "an")]
    return src, tgt


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair of 4 to 19 source words, ending in a period."""
    while True:
        src, tgt = _clause(rng)
        if rng.random() < 0.06:
            conj = rng.choice(["and", "but"])
            s2, t2 = _clause(rng, max_adj=1)
            src, tgt = src + [conj] + s2, tgt + [_CONJ[conj]] + t2
        if 3 <= len(src) <= 19:
            return " ".join(src) + ".", " ".join(tgt) + "."


def generate(
    seed: int, train: int, valid: int, test: int
) -> dict[str, list[tuple[str, str]]]:
    """Deterministic disjoint splits: no test or valid source appears in train."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[tuple[str, str]]] = {}
    for name, n in (("test", test), ("valid", valid), ("train", train)):
        pairs = []
        while len(pairs) < n:
            s, t = sentence_pair(rng)
            if name == "train" and s in seen:
                continue
            if name != "train":
                if s in seen:
                    continue
                seen.add(s)
            pairs.append((s, t))
        splits[name] = pairs
    return splits


def gloss(src: str) -> str:
    """Word-for-word translation: dictionary forms, source order, no agreement."""
    lex = LEXICON
    det = {"da": "lo", "dei": "lo", "un": "ein", "som": "ein"}
    out = []
    for w in src.rstrip(".").split():
        if w in lex.tgt:
            out.append(lex.tgt[w])
        elif w.endswith("s") and w[:-1] in lex.tgt:
            out.append(lex.tgt[w[:-1]])
        else:
            out.append(det.get(w, _CONJ.get(w, w)))
    return " ".join(out) + "."
