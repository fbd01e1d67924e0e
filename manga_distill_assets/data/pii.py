"""PII scrubbing for customer queries: e-mail addresses, phone numbers, order ids and card numbers.

Each kind is replaced by a placeholder (`<EMAIL>`, `<PHONE>`, `<ORDER_ID>`, `<CARD>`), so the model still
learns that a query *contains* an order id without ever seeing one, and "where is order MA-20394857" and
"where is order MA-11112222" become one text.

Overlaps are resolved in one left-to-right scan in which, at any position, the more specific kind wins:
e-mail before everything (its local part may be a phone number), card before order id and phone (a card's
first groups look like a phone), order id before phone. A scan repeats until nothing changes, which makes
`scrub_pii` idempotent and guarantees that `find_pii` finds nothing in its output.

Numbers that are not PII survive: volume numbers, years, prices ($12.99, ¥1,200), dates. ISBN-13s
(978/979 + valid check digit, with or without hyphens) are left as they are on purpose: they identify a book,
not a person, and "do you have 9784088820989" is a question the model must understand. Any other run of 13-19
digits counts as a card number (no Luhn check: a spurious <CARD> costs little, a leaked card costs a lot).

Japanese and Chinese are written without spaces, so in "注文番号はMA-43358274です" or
"メールはjohn@example.comです" the change of script is the only word break. Phones and cards are bordered
by anything but a digit, an "MA-" order id by anything but a Latin letter, an "order" introduction by
anything but a Latin letter or digit, and an e-mail's mailbox, domain labels and top-level domain are each
a run of Latin or a run of other letters, never both. So "ユーザー@example.jp" is one address and
"メールはjohn@example.jpです" keeps its Japanese words; the price is that a mailbox mixing scripts
("yuki太郎@example.jp") is replaced only from the change of script on.
"""

from __future__ import annotations

import re

EMAIL = "EMAIL"
PHONE = "PHONE"
ORDER_ID = "ORDER_ID"
CARD = "CARD"
PII_KINDS = (EMAIL, PHONE, ORDER_ID, CARD)
PLACEHOLDERS = {kind: f"<{kind}>" for kind in PII_KINDS}

# Latin letters: ASCII, Latin-1, Latin Extended-A and -B, Latin Extended Additional.
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
# A letter of any other script: kana, kanji, hangul, Cyrillic, ...
_OTHER_LETTER = rf"[^\W\d_{_LATIN}]"
# A mailbox, domain label or top-level domain is a run of Latin (with digits and the usual punctuation) or a
# run of other letters.
_MAILBOX = rf"(?:[\d_{_LATIN}.%+-]+|{_OTHER_LETTER}+)"
_DOMAIN_LABEL = rf"(?:[\d_{_LATIN}-]+|{_OTHER_LETTER}+)"
_TOP_LEVEL_DOMAIN = rf"(?:[{_LATIN}]{{2,}}|{_OTHER_LETTER}{{2,}})"
_EMAIL = re.compile(rf"{_MAILBOX}@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*\.{_TOP_LEVEL_DOMAIN}")

_SEP = r"[ .-]"
# A card: 13-19 digits in one run; groups of four (4-4-4-1..4, or 4-4-4-4-1..3 for 19 digits) with one
# consistent separator; or the 4-6-4/5 grouping of Amex and Diners.
_CARD = "|".join(
    (
        r"\d{13,19}",
        r"\d{4}(?P<card_sep>[ -])\d{4}(?P=card_sep)\d{4}(?P=card_sep)\d{1,4}(?:(?P=card_sep)\d{1,3})?",
        r"\d{4}[ -]\d{6}[ -]\d{4,5}",
    )
)
# Order ids: the store's "MA-" ids, or a bare 6-10 digit number that a customer introduces as an order.
# The introduction is kept, only the number is replaced.
_ORDER_WITH_PREFIX = rf"(?<![{_LATIN}])[Mm][Aa]-\d{{6,10}}"
_ORDER_INTRODUCTION = (
    rf"(?i:(?<![\d_{_LATIN}])order(?:\s*(?:no\.?|num\.?|number|id))?\s*[:#]?\s*"
    r"|#\s*|注文番号\s*(?:は|[:#])?\s*)"
)
# Phones: US 555-123-4567, (555) 123-4567, +1 555 123 4567, 555.123.4567; Japan 090-1234-5678, 03-1234-5678;
# and any "+country" number such as +81 90 1234 5678. Separators are required between groups, so plain
# numbers (2024, 105, 1200) never qualify.
_US_PHONE = rf"(?:\+?1{_SEP}?)?(?:\(\d{{3}}\){_SEP}?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}"
_JP_PHONE = rf"0\d{{1,4}}{_SEP}\d{{1,4}}{_SEP}\d{{4}}"
_INTERNATIONAL_PHONE = rf"\+\d{{1,3}}{_SEP}?(?:\(\d{{1,4}}\)|\d{{1,4}}){_SEP}?\d{{1,4}}{_SEP}?\d{{4}}"

_NUMERIC_PII = re.compile(
    rf"(?<!\d)(?P<{CARD}>{_CARD})(?!\d)"
    rf"|(?P<{ORDER_ID}>{_ORDER_WITH_PREFIX})(?!\d)"
    rf"|(?P<order_introduction>{_ORDER_INTRODUCTION})(?P<order_number>\d{{6,10}})(?!\d)"
    rf"|(?<![\d+])(?P<{PHONE}>{_US_PHONE}|{_JP_PHONE}|{_INTERNATIONAL_PHONE})(?!\d)"
)
# Every numeric pattern above holds a run of at least four digits; most queries ("vol 105", "$12.99") hold
# none, and this one cheap search spares them the full scan.
_FOUR_DIGITS = re.compile(r"\d{4}")


def _digit_count(candidate: str) -> int:
    return sum(char.isdecimal() for char in candidate)


def _is_isbn13(candidate: str) -> bool:
    digits = [int(char) for char in candidate if char.isdecimal()]
    if len(digits) != 13 or digits[:2] != [9, 7] or digits[2] not in (8, 9):
        return False
    return sum(digit * (3 if position % 2 else 1) for position, digit in enumerate(digits)) % 10 == 0


def _kind(match: re.Match[str]) -> str | None:
    """The PII kind of a match, or None for a number that only looks like one.

    Two shapes are rejected here rather than in the pattern because a digit count is easier to state than to
    spell as a regex: ISBN-13s, and "phones" with fewer than 10 or more than 15 digits (dates such as
    05.06.2024 or 03-12-2024 have the shape of a Japanese landline but only 8 digits).
    """
    group = match.lastgroup
    if group == "order_number":
        return ORDER_ID
    if group == CARD and _is_isbn13(match.group(CARD)):
        return None
    if group == PHONE and not 10 <= _digit_count(match.group(PHONE)) <= 15:
        return None
    return group


def _replacement(match: re.Match[str]) -> str:
    kind = _kind(match)
    if kind is None:
        return match.group(0)
    if match.lastgroup == "order_number":
        return match.group("order_introduction") + PLACEHOLDERS[ORDER_ID]
    return PLACEHOLDERS[kind]


def _scrub_emails(text: str) -> str:
    return _EMAIL.sub(PLACEHOLDERS[EMAIL], text) if "@" in text else text


def _scrub_once(text: str) -> str:
    text = _scrub_emails(text)
    return _NUMERIC_PII.sub(_replacement, text) if _FOUR_DIGITS.search(text) is not None else text


def scrub_pii(text: str) -> str:
    """Replace every e-mail, phone number, order id and card number in `text` with its placeholder."""
    while True:
        scrubbed = _scrub_once(text)
        if scrubbed == text:
            return text
        text = scrubbed


def find_pii(text: str) -> list[str]:
    """The kinds of PII present in `text` (in `PII_KINDS` order); empty for every output of `scrub_pii`."""
    without_emails = _scrub_emails(text)
    found = {EMAIL} if without_emails != text else set()
    if _FOUR_DIGITS.search(without_emails) is not None:
        found.update(kind for match in _NUMERIC_PII.finditer(without_emails) if (kind := _kind(match)))
    return [kind for kind in PII_KINDS if kind in found]
