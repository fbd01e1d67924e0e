"""scrub_pii replaces e-mails, phones, order ids and card numbers; find_pii reports what is left."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manga_distill_assets.data.pii import find_pii, scrub_pii


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mail me at john.doe+manga@example.co.jp please", "mail me at <EMAIL> please"),
        ("YUKI_99@Gmail.COM", "<EMAIL>"),
        ("call 555-123-4567", "call <PHONE>"),
        ("call (555) 123-4567 today", "call <PHONE> today"),
        ("call +1 555 123 4567", "call <PHONE>"),
        ("call 555.123.4567", "call <PHONE>"),
        ("call 1-555-123-4567", "call <PHONE>"),
        ("携帯 090-1234-5678", "携帯 <PHONE>"),
        ("tel 03-1234-5678", "tel <PHONE>"),
        ("tel 045 123 4567", "tel <PHONE>"),
        ("+81 90 1234 5678", "<PHONE>"),
        ("+81-3-1234-5678", "<PHONE>"),
    ],
)
def test_scrub_pii_replaces_emails_and_phones(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("where is MA-20394857", "where is <ORDER_ID>"),
        ("where is ma-203948", "where is <ORDER_ID>"),
        ("Ma-2039485712 never came", "<ORDER_ID> never came"),
        ("order 12345678 is late", "order <ORDER_ID> is late"),
        ("Order #1234567", "Order #<ORDER_ID>"),
        ("order no. 123456", "order no. <ORDER_ID>"),
        ("ORDER NO 9876543210", "ORDER NO <ORDER_ID>"),
        ("order number: 55512345", "order number: <ORDER_ID>"),
        ("#12345678 not arrived", "#<ORDER_ID> not arrived"),
        ("注文番号12345678の状況", "注文番号<ORDER_ID>の状況"),
    ],
)
def test_scrub_pii_replaces_order_ids_and_keeps_their_introduction(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("card 4111 1111 1111 1111 declined", "card <CARD> declined"),
        ("card 4111-1111-1111-1111", "card <CARD>"),
        ("card 4111111111111111", "card <CARD>"),
        ("amex 3782 822463 10005", "amex <CARD>"),
        ("old visa 4222222222222", "old visa <CARD>"),
        ("card 6011 0009 9013 9424 123", "card <CARD>"),
    ],
)
def test_scrub_pii_replaces_card_numbers(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The local part of an address is a phone number: the whole address is one e-mail.
        ("5551234567@txt.example.com", "<EMAIL>"),
        ("555-123-4567@txt.example.com", "<EMAIL>"),
        # Four groups of four are a card, not a phone followed by digits.
        ("pay with 4111 1111 1111 1111", "pay with <CARD>"),
        # A phone after "order" is still a phone, and a 16-digit number after "order" is a card.
        ("order 555-123-4567", "order <PHONE>"),
        ("order #4111111111111111", "order #<CARD>"),
        ("a@b.com 555-123-4567 MA-12345678 4111111111111111", "<EMAIL> <PHONE> <ORDER_ID> <CARD>"),
    ],
)
def test_scrub_pii_resolves_overlapping_kinds(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


# Japanese is written without spaces: each kind glued to Japanese words on both sides.
GLUED_TO_JAPANESE = [
    pytest.param("注文番号はMA-43358274です", "注文番号は<ORDER_ID>です", "ORDER_ID", id="MA order id"),
    pytest.param("注文はma-203948でした", "注文は<ORDER_ID>でした", "ORDER_ID", id="lower-case ma order id"),
    pytest.param(
        "注文番号は12345678です", "注文番号は<ORDER_ID>です", "ORDER_ID", id="introduced order number"
    ),
    pytest.param(
        "注文のorder 12345678が届かない",
        "注文のorder <ORDER_ID>が届かない",
        "ORDER_ID",
        id="English introduction",
    ),
    pytest.param("メールはjohn.doe@example.co.jpです", "メールは<EMAIL>です", "EMAIL", id="e-mail"),
    pytest.param("連絡先yuki_99@gmail.comまで", "連絡先<EMAIL>まで", "EMAIL", id="e-mail with underscore"),
    pytest.param("電話は090-1234-5678です", "電話は<PHONE>です", "PHONE", id="Japanese mobile"),
    pytest.param(
        "電話番号555-123-4567にお願いします", "電話番号<PHONE>にお願いします", "PHONE", id="US phone"
    ),
    pytest.param("電話は+81 90 1234 5678です", "電話は<PHONE>です", "PHONE", id="international phone"),
    pytest.param("カードは4111111111111111です", "カードは<CARD>です", "CARD", id="card"),
    pytest.param(
        "カード4111 1111 1111 1111が使えません", "カード<CARD>が使えません", "CARD", id="grouped card"
    ),
]


@pytest.mark.parametrize(("raw", "expected", "kind"), GLUED_TO_JAPANESE)
def test_scrub_pii_replaces_pii_glued_to_japanese_and_keeps_the_japanese(
    raw: str, expected: str, kind: str
) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize(("raw", "expected", "kind"), GLUED_TO_JAPANESE)
def test_find_pii_finds_pii_glued_to_japanese(raw: str, expected: str, kind: str) -> None:
    assert find_pii(raw) == [kind]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("주문MA-12345678입니다", "주문<ORDER_ID>입니다"),
        ("заказMA-12345678", "заказ<ORDER_ID>"),
        ("订单MA-12345678已发货", "订单<ORDER_ID>已发货"),
    ],
)
def test_an_ma_order_id_after_a_letter_of_another_script_is_replaced(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize("text", ["DRAMA-1234567", "CINÉMA-12345678", "reorder 12345678"])
def test_ma_and_order_inside_a_latin_word_are_not_order_ids(text: str) -> None:
    assert scrub_pii(text) == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ユーザー@example.jp", "<EMAIL>"),
        ("иван@почта.рф", "<EMAIL>"),
        ("メールはyuki@例え.jpです", "メールは<EMAIL>です"),
    ],
)
def test_addresses_written_in_other_scripts_are_emails(raw: str, expected: str) -> None:
    assert scrub_pii(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "do you have one piece vol 12",
        "volume 105 please",
        "is it out in 2024?",
        "released 2024-05-12",
        "on 05.06.2024",
        "on 03-12-2024",
        "costs $12.99",
        "costs ¥1,200 or ¥12,000",
        "order 12345 is late",
        "vol #105",
        "ISBN 9784088820989",
        "ISBN 978-4-08-882098-9",
        "the 20th Century Boys box set",
        "Mob Psycho 100",
        "Kaiju No. 8",
    ],
)
def test_scrub_pii_leaves_ordinary_numbers(text: str) -> None:
    assert scrub_pii(text) == text
    assert find_pii(text) == []


def test_a_13_digit_number_with_a_wrong_isbn_check_digit_counts_as_a_card() -> None:
    assert scrub_pii("9784088820980") == "<CARD>"


def test_find_pii_reports_each_kind_once_in_a_fixed_order() -> None:
    text = "card 4111111111111111, mail a@b.com or c@d.org, call 555-123-4567"
    assert find_pii(text) == ["EMAIL", "PHONE", "CARD"]


def test_find_pii_finds_order_ids() -> None:
    assert find_pii("where is order #12345678") == ["ORDER_ID"]


# Fragments that look like PII, almost-PII and their separators, glued together at random, so that matches
# touch, overlap and get cut in every way.
fragments = st.one_of(
    st.sampled_from(
        [
            "order", "order #", "order no ", "#", "MA-", "ma-", "@", "a@b.co", ".com", "+1 ", "+81 ",
            "(555) ", "090-", "03-", "-", " ", ".", "978", "注文番号", "x", "ORDER", "は", "です", "é",
        ]
    ),
    st.from_regex(r"\d{1,19}", fullmatch=True),
    st.text(alphabet="0123456789 -.()+#@", max_size=16),
)  # fmt: skip
pii_like_text = st.one_of(st.lists(fragments, max_size=10).map("".join), st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(pii_like_text)
def test_scrub_pii_is_idempotent(text: str) -> None:
    once = scrub_pii(text)
    assert scrub_pii(once) == once


@settings(max_examples=300, deadline=None)
@given(pii_like_text)
def test_find_pii_finds_nothing_after_scrubbing(text: str) -> None:
    assert find_pii(scrub_pii(text)) == []


@settings(max_examples=300, deadline=None)
@given(pii_like_text)
def test_find_pii_finds_something_exactly_when_scrubbing_changes_the_text(text: str) -> None:
    assert (find_pii(text) != []) == (scrub_pii(text) != text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "Zs", "P"]), max_size=40))
def test_text_without_digits_or_at_signs_is_untouched(text: str) -> None:
    assert scrub_pii(text) == text
