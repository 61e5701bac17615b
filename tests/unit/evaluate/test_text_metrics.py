"""Generation metrics against the libraries they stand for, called directly on fixed strings
(empty outputs included), and own-vs-other on cases whose answer is known."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from personalab.data.schema import Example
from personalab.evaluate.text_metrics import generation_metrics, own_vs_other, row_scores

PAIRS = [  # (generated, reference)
    ("Could you please send me the report by Friday?", "Would you please send the report by Friday? Thanks!"),
    ("", "Please call me back."),
    ("Thanks a lot for your help.", ""),
    ("", ""),
    ("Kind regards, Ana", "Kind regards, Ana"),
    ("The meeting moved to Monday, sorry!", "Sorry: the meeting is on Monday now."),
]
ROWS = [Example("a" if i < 3 else "b", f"input {i}", reference, "test") for i, (_, reference) in enumerate(PAIRS)]
PREDICTED = [generated for generated, _ in PAIRS]


@pytest.mark.parametrize("generated, reference", PAIRS)
def test_row_scores_are_rouge_score_and_sacrebleu(generated, reference):
    direct = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False).score(reference, generated)
    scores = row_scores(generated, reference)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert scores[name] == pytest.approx(direct[name].fmeasure, abs=1e-12)
    assert scores["sentence_bleu"] == pytest.approx(sacrebleu.sentence_bleu(generated, [reference]).score / 100)
    assert scores["exact_match"] == float(generated.strip() == reference.strip())


@pytest.mark.parametrize("generated, reference", PAIRS)
def test_the_strategies_rouge_l_is_evaluations(generated, reference):
    """Strategies (a layer below evaluate) tune ensemble weights by their own ROUGE-L call."""
    from personalab.strategies.validation import rouge_l

    assert rouge_l(generated, reference) == row_scores(generated, reference)["rougeL"]


def test_overall_and_per_persona_figures():
    scores = [row_scores(g, r) for g, r in PAIRS]
    metrics = generation_metrics(ROWS, PREDICTED, scores)
    assert metrics["n"] == len(PAIRS)
    assert metrics["rougeL"] == pytest.approx(sum(s["rougeL"] for s in scores) / len(scores))
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTED, [[r for _, r in PAIRS]]).score)
    assert metrics["exact_match"] == pytest.approx(2 / 6)  # "" == "" counts: both are empty
    assert metrics["length"] == pytest.approx(sum(len(g.split()) for g in PREDICTED) / 6)
    b = metrics["per_persona"]["b"]
    assert b["n"] == 3 and b["rouge1"] == pytest.approx(sum(s["rouge1"] for s in scores[3:]) / 3)
    assert b["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTED[3:], [[r for _, r in PAIRS[3:]]]).score)
    assert set(metrics["per_persona"]) == {"a", "b"}


def test_own_vs_other_counts_closer_farther_and_ties():
    own = {"a": "please send the report today", "b": "send it now or else", "c": "hello send my warm regards"}
    references = [Example(p, "same email", text, "train") for p, text in own.items()]
    references.append(Example("a", "lonely email", "nobody else rewrote this", "train"))
    rows = [Example("a", "same email", own["a"], "test"), Example("b", "same email", own["b"], "test"),
            Example("a", "lonely email", "nobody else rewrote this", "test")]
    # a's generation is its own rewrite: closer than both others (1); b's is a's rewrite:
    # farther from its own than from a's (0), and as far (one shared word in five) from its own
    # as from c's (0.5).
    predicted = [own["a"], own["a"], "anything"]
    result = own_vs_other(rows, predicted, references)
    assert result["rows"] == 2 and result["pairs"] == 4 and result["personas"] == 2
    assert result["share"] == pytest.approx((1.0 + (0.0 + 0.5) / 2) / 2)


def test_own_vs_other_without_shared_inputs_has_no_share():
    rows = [Example("a", "x", "y", "test")]
    assert own_vs_other(rows, ["y"], rows) == {"rows": 0, "pairs": 0, "share": None, "personas": 0}
