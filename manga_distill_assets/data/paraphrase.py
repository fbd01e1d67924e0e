"""Paraphrases of customer queries: a deterministic offline generator, and the prompt and parsing for an LLM.

The offline generator exists so that the pipeline runs end to end with no network and no spend, and so that
the same labelled set always yields the same transfer set. It rewrites only the free wording of a query:
titles, numbers, quoted text and placeholders such as ``<ORDER_ID>`` are masked before any rule runs and put
back verbatim afterwards, so a paraphrase never changes what the query is about and its label stays right.
"""

import hashlib
import json
import random
import re

# Part of the offline backend's cache identity: change it whenever a rule changes, so that cached
# paraphrases made by the old rules are not served as if the new rules had made them.
OFFLINE_RULES_VERSION = "1"

_MASK_FIRST = 0xE000
_MASK_LAST = 0xF8FF
_MASK_CLASS = f"{chr(_MASK_FIRST)}-{chr(_MASK_LAST)}"
_MASK_CHAR = re.compile(f"[{_MASK_CLASS}]")

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
_QUOTED = re.compile(r"\"[^\"\n]+\"|“[^”\n]+”|「[^」\n]+」|『[^』\n]+』")
_NUMBER = re.compile(r"[#$€£¥]?\w*\d\w*(?:[.,:/-]\d+)*")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")

# Capitalised words that open or fill ordinary sentences; any other capitalised word is taken for a title or
# a name and left alone.
_SENTENCE_WORDS = frozenset(
    {
        *("a", "an", "any", "are", "can", "could", "did", "do", "does", "for", "has", "have", "hello", "hey"),
        *("hi", "how", "i", "i'd", "i'll", "i'm", "i've", "if", "is", "it", "may", "my", "no", "ok", "okay"),
        *("please", "pls", "should", "thank", "thanks", "the", "there", "this", "what", "when", "where"),
        *("which", "who", "why", "will", "would", "yes", "you"),
    }
)
# Sentence openers that may be lowercased when a framing phrase is put in front of them.
_LOWERCASABLE_OPENERS = _SENTENCE_WORDS - {"i", "i'd", "i'll", "i'm", "i've"}
# Lowercase words that join the capitalised words of one title ("Attack on Titan", "Spy x Family").
_TITLE_CONNECTORS = frozenset(
    {"&", "a", "and", "de", "ga", "in", "ni", "no", "of", "on", "the", "to", "vs", "wa", "x"}
)

# Interchangeable phrasings in a manga store; one source phrase belongs to one group only.
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("manga", "comic"),
    ("comics", "manga books"),
    ("volume", "vol", "vol.", "tankobon"),
    ("volumes", "vols"),
    ("order", "purchase"),
    ("orders", "purchases"),
    ("ordered", "purchased", "bought"),
    ("ship", "send", "dispatch"),
    ("shipped", "sent", "dispatched"),
    ("shipping", "delivery"),
    ("a refund", "my money back"),
    ("refunded", "reimbursed"),
    ("recommend", "suggest"),
    ("recommended", "suggested"),
    ("recommendation", "suggestion"),
    ("recommendations", "suggestions"),
    ("in stock", "available"),
    ("out of stock", "sold out", "unavailable"),
    ("do you have", "do you carry", "do you sell"),
    ("buy", "pick up"),
    ("price", "cost"),
    ("store", "shop"),
    ("release date", "launch date", "publication date"),
    ("track", "check on"),
    ("arrive", "get here", "be delivered"),
    ("want", "would like"),
    ("help", "assist"),
    ("where is", "where's"),
    ("what is", "what's"),
    ("it is", "it's"),
    ("i am", "i'm"),
    ("i would like", "i'd like"),
    ("do not", "don't"),
    ("does not", "doesn't"),
    ("cannot", "can't", "can not"),
)
_SYNONYMS: dict[str, tuple[str, ...]] = {
    phrase: tuple(other for other in group if other != phrase)
    for group in _SYNONYM_GROUPS
    for phrase in group
}
_WORD_OR_MASK = rf"[\w{_MASK_CLASS}]"
_SYNONYM_PATTERN = re.compile(
    rf"(?<!{_WORD_OR_MASK})(?:"
    + "|".join(re.escape(phrase) for phrase in sorted(_SYNONYMS, key=len, reverse=True))
    + rf")(?!{_WORD_OR_MASK})",
    re.IGNORECASE,
)

# A prefix that ends in a comma or colon continues the sentence, so the query's opener is lowercased after it.
_GREETINGS = ("Hi, ", "Hey, ", "Hello! ", "Hi there! ")
_QUESTION_OPENERS = ("Quick question: ", "Could you tell me, ", "I was wondering, ")
_SUFFIXES = (" Thanks!", " Thank you.", " thx", " Thanks in advance.")
_WH_QUESTION = re.compile(r"^(where|what|when|how much) (is|are) (.+?)\s*\?$", re.IGNORECASE)
_REQUEST_QUESTION = re.compile(r"^(?:can|could|would) you (?:please )?(.+?)\s*\?$", re.IGNORECASE)
# Typos fall only on known ordinary words, never on a lowercase title the masking could not recognise.
_TYPO_VOCABULARY = frozenset(
    word
    for phrase in [*_SYNONYMS, "please", "thanks", "could", "would", "question", "wondering", "hello"]
    for word in phrase.split()
    if len(word) >= 5 and word.isalpha()
)
_TYPO_WORD = re.compile(r"(?<![\w'’-])[a-z]{5,}(?![\w'’-])")

PROMPTS: dict[str, str] = {
    "v1": """You rewrite messages that customers send to an online manga store, to train an intent classifier.

Write exactly {n} paraphrases of the customer message below. Every paraphrase must:
- ask for the same thing as the original (the same intent);
- keep every title, number and placeholder in angle brackets (such as <ORDER_ID>) exactly as written;
- read like a real customer typing in a chat window: vary the wording, word order and politeness;
- differ from the original and from every other paraphrase.

Answer with a JSON list of exactly {n} strings and nothing else.

<message>
{text}
</message>""",
}


def normalise_for_comparison(text: str) -> str:
    """Case and spacing do not make a paraphrase new, so comparisons ignore them."""
    return " ".join(text.casefold().split())


def offline_paraphrases(text: str, n: int = 5, seed: int = 0) -> list[str]:
    """Up to ``n`` distinct rewrites of ``text``, the same in every process for the same (text, seed).

    Fewer than ``n`` come back only when the text leaves too little room for variation. None come back for
    an empty text, or one that uses the private-use characters the masking relies on, or has more protected
    spans than there are such characters.
    """
    if not text.strip() or _MASK_CHAR.search(text):
        return []
    masking = _mask_protected(text.strip())
    if masking is None:
        return []
    masked, protected = masking
    rng = random.Random(_stable_seed(text, seed))
    source_key = normalise_for_comparison(text)
    kept: list[str] = []
    seen = {source_key}
    for _ in range(12 * n):
        if len(kept) == n:
            break
        candidate = _unmask(_rewrite(masked, rng), protected)
        key = normalise_for_comparison(candidate)
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
    return kept


def build_prompt(text: str, n: int, prompt_version: str) -> str:
    """The request for ``n`` paraphrases; its wording is fixed per version, so a version names one prompt."""
    if prompt_version not in PROMPTS:
        raise ValueError(
            f"Unknown paraphrase prompt_version {prompt_version!r}; known versions: {sorted(PROMPTS)}. "
            "Set prompt_version to one of them, or add the new prompt to PROMPTS."
        )
    return PROMPTS[prompt_version].format(n=n, text=text)


def parse_paraphrases(
    answer: str, source: str, n: int, min_chars: int = 3, max_chars: int = 300
) -> tuple[list[str], int]:
    """The usable paraphrases in an answer, and how many of the ``n`` requested did not survive.

    Leniency: the answer may be exactly a JSON list; or contain one ```json (or bare ```) fenced block whose
    whole content is a JSON list, with any prose around the fence; or have prose before the list, but then
    nothing except whitespace after it (trailing text outside a fence means the list cannot be told apart
    from commentary). Anything else is unparsable and all ``n`` count as dropped. Items that are not
    strings, are empty, shorter than ``min_chars`` or longer than ``max_chars`` after stripping, repeat the
    source or an earlier item (ignoring case and spacing) are dropped. At most ``n`` are kept, so
    ``len(kept) + dropped == n`` always holds: a short list counts its missing items as dropped.
    """
    items = _json_list(answer)
    if items is None:
        return [], n
    kept: list[str] = []
    seen = {normalise_for_comparison(source)}
    for item in items:
        if len(kept) == n:
            break
        if not isinstance(item, str):
            continue
        candidate = item.strip()
        key = normalise_for_comparison(candidate)
        if min_chars <= len(candidate) <= max_chars and key not in seen:
            seen.add(key)
            kept.append(candidate)
    return kept, n - len(kept)


def is_list_answer(answer: str) -> bool:
    """Whether an answer holds one JSON list as ``parse_paraphrases`` reads it, however few items survive.

    An answer that is not a list at all is worth asking for again; a list with too few good items is not,
    since the model did follow the format and a second answer would cost as much for a similar result.
    """
    return _json_list(answer) is not None


def _json_list(answer: str) -> list[object] | None:
    fences = re.findall(r"```(?:json)?(.*?)```", answer, flags=re.DOTALL | re.IGNORECASE)
    if len(fences) > 1:
        return None
    if fences:
        candidate, start = fences[0].strip(), 0
    else:
        candidate, start = answer, answer.find("[")
    if start < 0:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(candidate, start)
    except json.JSONDecodeError:
        return None
    if candidate[end:].strip() or not isinstance(value, list):
        return None
    return value


def _stable_seed(text: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _mask_protected(text: str) -> tuple[str, list[str]] | None:
    """Replace every span a paraphrase must keep by one private-use character, so no rule can touch it."""
    spans = _merge_spans(
        [m.span() for pattern in (_PLACEHOLDER, _QUOTED, _NUMBER) for m in pattern.finditer(text)]
        + _title_spans(text)
    )
    if len(spans) > _MASK_LAST - _MASK_FIRST + 1:
        return None
    protected: list[str] = []
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        pieces.append(chr(_MASK_FIRST + len(protected)))
        protected.append(text[start:end])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), protected


def _title_spans(text: str) -> list[tuple[int, int]]:
    """Runs of capitalised words that are not ordinary sentence words, joined by connectors such as "on"."""
    spans: list[tuple[int, int]] = []
    run_start: int | None = None
    run_end = last_end = 0
    connector_pending = False
    for match in _WORD.finditer(text):
        word = match.group()
        joined = run_start is not None and not text[last_end : match.start()].strip(" ")
        if word[0].isupper() and word.casefold() not in _SENTENCE_WORDS:
            if not joined:
                if run_start is not None:
                    spans.append((run_start, run_end))
                run_start = match.start()
            run_end = last_end = match.end()
            connector_pending = False
        elif joined and word in _TITLE_CONNECTORS and not connector_pending:
            connector_pending = True
            last_end = match.end()
        else:
            if run_start is not None:
                spans.append((run_start, run_end))
            run_start, connector_pending = None, False
    if run_start is not None:
        spans.append((run_start, run_end))
    return spans


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _unmask(masked: str, protected: list[str]) -> str:
    return _MASK_CHAR.sub(lambda m: protected[ord(m.group()) - _MASK_FIRST], masked)


def _rewrite(masked: str, rng: random.Random) -> str:
    rewritten = masked
    for step in (_swap_synonyms, _reformulate_question, _frame):
        rewritten = step(rewritten, rng)
    if rng.random() < 0.12:
        rewritten = _add_typo(rewritten, rng)
    return rewritten


def _swap_synonyms(text: str, rng: random.Random) -> str:
    def replace(match: re.Match[str]) -> str:
        phrase = match.group()
        if rng.random() < 0.4:
            return phrase
        return _match_case(phrase, rng.choice(_SYNONYMS[phrase.casefold()]))

    return _SYNONYM_PATTERN.sub(replace, text)


def _match_case(original: str, replacement: str) -> str:
    return replacement[0].upper() + replacement[1:] if original[0].isupper() else replacement


def _reformulate_question(text: str, rng: random.Random) -> str:
    """Turn a question into an indirect question, a plain request, or a casual one with no question mark."""
    choice = rng.random()
    wh_question = _WH_QUESTION.match(text)
    request = _REQUEST_QUESTION.match(text)
    if wh_question and choice < 0.3:
        word, verb, rest = wh_question.groups()
        return f"Could you tell me {word.lower()} {rest} {verb.lower()}?"
    if request and choice < 0.3:
        return f"Please {request.group(1)}."
    if text.endswith("?") and choice > 0.8:
        return text[:-1].rstrip()
    return text


def _frame(text: str, rng: random.Random) -> str:
    """Add a greeting, a politeness marker or thanks around the query, as customers do in chat."""
    choice = rng.random()
    if choice < 0.4:
        prefix = rng.choice(_GREETINGS + _QUESTION_OPENERS if text.endswith("?") else _GREETINGS)
        return prefix + (_lowercase_opener(text) if prefix.endswith((", ", ": ")) else text)
    if choice < 0.55 and text.endswith(("?", ".", "!")) and "please" not in text.casefold():
        return f"{text[:-1].rstrip()}, please{text[-1]}"
    if choice < 0.8:
        return (text if text.endswith(("?", ".", "!")) else text + ".") + rng.choice(_SUFFIXES)
    return text


def _lowercase_opener(text: str) -> str:
    opener = _WORD.match(text)
    if opener and opener.group().casefold() in _LOWERCASABLE_OPENERS:
        return text[0].lower() + text[1:]
    return text


def _add_typo(text: str, rng: random.Random) -> str:
    """Swap two inner letters of one ordinary word: real queries are full of such slips."""
    words = [word for word in _TYPO_WORD.finditer(text) if word.group() in _TYPO_VOCABULARY]
    if not words:
        return text
    word = rng.choice(words)
    i = rng.randrange(word.start() + 1, word.end() - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
