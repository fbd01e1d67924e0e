"""How good an answer is: every required fact stated, token F1 against the reference, a 1–5 rubric score.

Facts are matched after case-folding and collapsing whitespace, so "14 Volumes" states "14 volumes".
Token F1 is SQuAD's: lower-cased words without punctuation or articles, overlap counted with multiplicity.
The offline rubric judge stands in for a Claude judge with the same rubric (see `RUBRIC`); it is
deterministic, so scores compare across runs.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from manga_distill_assets.data.catalogue_assistant import is_refusal

RUBRIC = (
    "1: refuses, is empty, or states none of the required facts. "
    "+2 scaled by the share of required facts stated. "
    "+1 for a real answer (not a refusal) of at most 60 words. "
    "+1 for no repeated three-word run (fluent, not looping)."
)
MAX_ANSWER_WORDS = 60
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def facts_stated(answer: str, facts: Sequence[str]) -> float:
    """The share of `facts` the answer states (1.0 for no facts)."""
    if len(facts) == 0:
        return 1.0
    folded = _folded(answer)
    return sum(_folded(fact) in folded for fact in facts) / len(facts)


def fact_accurate(answer: str, facts: Sequence[str]) -> bool:
    """Every required fact stated."""
    return facts_stated(answer, facts) == 1.0


def _words(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.casefold().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = _words(prediction), _words(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def _repeats_itself(words: list[str]) -> bool:
    runs = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(runs) != len(set(runs))


def rubric_score(answer: str, facts: Sequence[str]) -> int:
    """The offline judge's 1–5 score under `RUBRIC`."""
    words = answer.split()
    if not words or is_refusal(answer):
        return 1
    score = 1 + 2 * facts_stated(answer, facts)
    score += len(words) <= MAX_ANSWER_WORDS
    score += not _repeats_itself([word.casefold() for word in words])
    return round(score)


def answer_quality(answers: Sequence[str], references: Sequence[str], facts: Sequence[Sequence[str]]) -> dict:
    """Mean fact accuracy, token F1, judge score and refusal rate over paired answers and references."""
    if not (len(answers) == len(references) == len(facts)):
        raise ValueError(
            f"answer_quality got {len(answers)} answers, {len(references)} references and {len(facts)} fact "
            "lists; give one of each per question."
        )
    if not answers:
        raise ValueError("answer_quality got no answers; evaluate at least one question.")
    count = len(answers)
    return {
        "fact_accuracy": sum(map(fact_accurate, answers, facts)) / count,
        "token_f1": sum(map(token_f1, answers, references)) / count,
        "judge_score": sum(map(rubric_score, answers, facts)) / count,
        "refusal_rate": sum(map(is_refusal, answers)) / count,
    }
