import random

from nmt.data import toy
from nmt.metrics import bleu


def test_deterministic_and_disjoint():
    a = toy.generate(3, 2000, 100, 200)
    b = toy.generate(3, 2000, 100, 200)
    assert a == b
    assert toy.generate(4, 2000, 100, 200) != a
    train = {s for s, _ in a["train"]}
    assert not train & {s for s, _ in a["test"]}
    assert not train & {s for s, _ in a["valid"]}


def test_vocabulary_and_lengths():
    pairs = toy.generate(1, 20000, 10, 10)["train"]
    src_words = {w for s, _ in pairs for w in s.split()}
    tgt_words = {w for _, t in pairs for w in t.split()}
    assert len(src_words) >= 300 and len(tgt_words) >= 300
    lengths = [len(s.split()) for s, _ in pairs]
    assert min(lengths) >= 4 and max(lengths) <= 20
    assert sum(lengths) / len(lengths) > 6 and max(lengths) >= 17


def test_reordering_and_agreement():
    rng = random.Random(0)
    lex = toy.LEXICON
    for _ in range(200):
        src, tgt = toy.sentence_pair(rng)
        words = src.rstrip(".").split()
        verb = next(w for w in words if w.rstrip("s") in lex.transitive)
        # SVO -> SOV: the source's verb (second constituent) ends the target clause
        if " and " not in src and " but " not in src:
            assert tgt.rstrip(".").split()[-1].startswith(lex.tgt[verb.rstrip("s")])


def test_word_for_word_baseline_is_poor():
    test = toy.generate(1234, 10, 10, 500)["test"]
    refs = [t for _, t in test]
    assert bleu([toy.gloss(s) for s, _ in test], refs) < 30
    assert bleu([s for s, _ in test], refs) < 30
