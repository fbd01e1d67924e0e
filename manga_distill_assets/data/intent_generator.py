"""The labelled manga-store intent set: ten intents, written the way customers type.

Run `python -m manga_distill_assets.data.intent_generator` to rewrite `manga_intents.csv` beside this file.
The output depends on the seed alone, so the committed CSV can always be regenerated and checked.

Intents. Five that any shop's assistant answers (product_inquiry, order_status, shipping, return_request,
recommendation), and five that a manga shop's inbox adds: preorder (new volumes sell on
preorder, with bonuses and release dates), payment_issue (declined cards, double charges, konbini and
cash-on-delivery payment), account_help (log-in, points, wishlists), store_availability (stock online and in
the physical stores) and complaint (damaged box sets, wrong volumes, bad service, with no request attached).

Difficulty is deliberate. The templates share words across the confusable pairs (shipping vs order_status,
return_request vs order_status and complaint, product_inquiry vs recommendation, preorder and
store_availability vs product_inquiry), and about 8% of rows are hard on purpose (`kind` in
`generate_intent_rows`):

- "cue" rows: near-identical phrasings whose label rests on one small cue. "My refund for order ... hasn't
  arrived" is a return, "my order ... hasn't arrived" an order question, and the same with "unacceptable"
  a complaint; "when will my order ship" is order_status, "when will orders placed today ship" shipping;
  and a volume number past the last published one turns "do you have Berserk vol 43" into a preorder
  (only the catalogue knows where the published run ends).
- "multi" rows: two requests in one message, in either order, labelled with the one an agent must act on
  first (`URGENCY`: a complaint before a payment problem before a return, and so on down to a
  recommendation).

Typos, casing, dropped punctuation, small talk that borrows other intents' words, romaji fillers and the odd
emoji come on top. With about one row in six hard, the MiniLM-L6 teacher fine-tuned by `make demo` (three
epochs) scored 94.4-95.7% on validation and 94.0-94.7% on test in two runs; `ambiguous_fraction` moves the
difficulty.
"""

from __future__ import annotations

import argparse
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from manga_distill_assets.data.catalog import (
    COUNTRIES,
    DEMOGRAPHICS,
    FORMATS,
    GENRES,
    LABELLED_AS_OF,
    ROMAJI_FILLERS,
    ROMAJI_SHOP_TERMS,
    STORES,
    TITLES,
    Format,
    Title,
    titles_trending_on,
)
from manga_distill_assets.data.labeled import stratified_split, text_key

INTENTS_CSV = Path(__file__).with_name("manga_intents.csv")
MIN_WORDS, MAX_WORDS = 3, 40

# Relative frequency of each intent; real inboxes are never perfectly balanced.
LABEL_WEIGHTS: dict[str, float] = {
    "account_help": 0.86,
    "complaint": 0.94,
    "order_status": 1.18,
    "payment_issue": 0.88,
    "preorder": 0.97,
    "product_inquiry": 1.16,
    "recommendation": 1.08,
    "return_request": 1.02,
    "shipping": 1.00,
    "store_availability": 0.91,
}
LABELS: tuple[str, ...] = tuple(sorted(LABEL_WEIGHTS))

TEMPLATES: dict[str, tuple[str, ...]] = {
    "product_inquiry": (
        "What is {title} about?",
        "What's {title} about, no spoilers please.",
        "How many volumes of {title} are there?",
        "how many volumes is {title}",
        "Is {title} finished or still ongoing?",
        "is {title} completed in english yet",
        "Who is the author of {title}?",
        "Who draws {title}? Is it the same person who writes it?",
        "Is the {title} {format} in English or Japanese?",
        "Which volumes are in the {title} box set?",
        "What are the dimensions of the {title} {format}?",
        "Is the {title} {format} printed in color or black and white?",
        "Is {title} published by {publisher} or someone else?",
        "Does {title} vol {vol} come with the {obi}?",
        "Is the {title} {format} the same translation as the regular paperbacks?",
        "What's the difference between the {title} {format} and the {format2}?",
        "Does the {title} {format} read right to left like the Japanese {tankobon}?",
        "Is the {title} {kanzenban} the Japanese edition or an English one?",
        "How many pages is {title} vol {vol}?",
        "Does the {title} digital edition keep the color pages?",
        "Which volume of {title} picks up where the anime stops?",
        "ISBN for {title} volume {vol}?",
        "What age rating does {title} have?",
        "Is {title} considered {demo}?",
        "Does the Japanese {title} {tankobon} have furigana?",
        "Is the {title} collector's edition signed by {author}?",
        "Price of the {title} {format}?",
        "how much is {title} vol {vol}",
        "Is {title} vol {vol} really {price} or is that a typo on the site?",
        "Is there an official {title} artbook?",
        "Does {title} have a sequel or spin-off series?",
        "Is {title} by the same mangaka as {title2}?",
        "What else has {author} written besides {title}?",
        "Is the {title} {format} hardcover or softcover?",
        "Does the {title} {format} include the extra chapters from the magazine run?",
        "Is {title} vol {vol} the {aizoban} reprint or the first edition?",
        "{title} {format} contents?",
        "Are the {title} volumes {publisher} sells uncensored?",
        "Does the {title} box set come with a poster or just the books?",
        "I'm trying to figure out whether the {title} {format} collects the same chapters as the old "
        "{format2}, because I own half of those and don't want doubles.",
        "Which chapters are in {title} volume {vol}?",
        "Is {title} vol {vol} the final volume?",
        "what order do i read the {title} spin offs in",
        "Does the {title} box set ship with a slipcase?",
        "If I order the {title} {format}, is it the English version?",
        "Is {title} vol {vol} the latest release?",
        "Does the {title} {format} come in a sturdy box or just shrink wrap?",
        "Is the {title} {format} you sell the new printing or the old one?",
        "Is the {title} {format} available with the original Japanese cover?",
    ),
    "recommendation": (
        "Is {title} good for someone who liked {title2}?",
        "Would I like {title} if I loved {title2}?",
        "Recommend me something like {title}.",
        "Manga similar to {title}?",
        "What should I read after finishing {title}?",
        "I just finished {title}, what next?",
        "Best {genre} manga for a beginner?",
        "Any good {demo} series that are already finished?",
        "Looking for a gift for a {age} year old who loves {title}, any ideas?",
        "What's a good {genre} manga under 15 volumes?",
        "Top five {demo} manga you'd recommend right now?",
        "Suggest a dark fantasy like {title} but a bit less gory.",
        "something wholesome like {title} pls",
        "My friend likes {title} and {title2}, what should I get her?",
        "Which is better to start with, {title} or {title2}?",
        "Is {title} worth reading?",
        "Should I read {title} or watch the anime first?",
        "What isekai manga do you recommend?",
        "Recommend a completed seinen series with great art.",
        "I want to get into manga, where do I start?",
        "What's trending in {genre} right now?",
        "Best selling manga this month?",
        "Other series you'd recommend if I like {author}'s style?",
        "Staff picks for {genre}?",
        "Would {title} be okay for my {age} year old or is it too much?",
        "Need a short manga to read on a flight, ideas?",
        "What's a good box set to gift for Christmas?",
        "Which {publisher} series would you recommend to a new reader?",
        "I loved the {title} anime, is the manga better?",
        "Give me three {genre} series with strong female leads.",
        "Anything like {title} that is not so long?",
        "My {age} year old only reads {title}, how do I get her into something new?",
        "Hidden gems like {title2} that nobody talks about?",
        "which {genre} manga made you cry",
        "I've read basically everything by {author} and {title2} too, I need a new {demo} series with a "
        "real ending, not one that's been running for twenty years. Suggestions?",
        "recs for a {genre} fan?",
        "If I liked {title} what other {demo} should I try?",
        "Best manga to learn Japanese with, something simple like {title}?",
        "I'm placing an order anyway, what else should I add if I like {title}?",
        "What would you recommend to preorder this season?",
        "What's in stock that's similar to {title}?",
        "My son returned {title} because it was too scary, what's a gentler series?",
        "Which box set makes a good gift to ship to {country}?",
        "Which series should I buy with my points if I liked {title}?",
    ),
    "order_status": (
        "Where is my order {order}?",
        "When will my order ship?",
        "Has my order {order} shipped yet?",
        "Order {order} still says processing.",
        "Tracking for {order} hasn't updated in {days} days.",
        "I ordered {title} vol {vol} {days} days ago and it still hasn't shipped.",
        "It says delivered but I don't have my package.",
        "Can you give me the tracking number for {order}?",
        "What's the status of my order?",
        "My order is stuck in transit.",
        "Why is my order {order} still pending?",
        "Did my order go through? I never got a confirmation.",
        "Can I still change the address on order {order}?",
        "Only part of my order arrived, where's the rest?",
        "My {title} box set order hasn't arrived yet.",
        "Will order {order} arrive before {weekday}?",
        "The tracking says my package is held at customs.",
        "order status {order}",
        "where's my stuff",
        "still waiting on {order}",
        "My email is {email}, can you check where my order is?",
        "Can I cancel order {order} before it ships?",
        "It's been {days} days since I ordered {title} and the tracking number doesn't work.",
        "Is my order {order} delayed?",
        "when does order {order} arrive",
        "Tracking shows the package went back to the warehouse, what happened to order {order}?",
        "I placed an order on {weekday} for {title} volumes {vol} to {vol2} and the status hasn't "
        "changed since, can someone look into it?",
        "Has {order} left the warehouse?",
        "My order shows shipped but the carrier has no record of it.",
        "Can you split order {order} so the in-stock volumes ship now?",
        "estimated delivery for my order?",
        "The delivery window for my order passed yesterday.",
        "my package says out for delivery since {weekday}",
        "My order {order} shows a shipping label created but nothing since.",
        "Is order {order} coming by express shipping like I paid for?",
        "Has my order reached the {store} store for pickup yet?",
        "I paid for order {order} {days} days ago but there's no tracking.",
        "My account page shows order {order} as cancelled, did it go through?",
        "The {title} box set I ordered was in stock, so why hasn't it shipped?",
    ),
    "shipping": (
        "How long does shipping to {country} take?",
        "Do you ship to {country}?",
        "How much is shipping for a box set?",
        "Is there free shipping over {price}?",
        "Do you offer express shipping?",
        "Which carriers do you use?",
        "Do you ship internationally?",
        "Will I have to pay customs fees in {country}?",
        "Can you ship to a PO box?",
        "Do you pack box sets in a separate outer box?",
        "How much would shipping to {country} be for {n} volumes?",
        "Is same-day delivery available near your {store} store?",
        "Can I pick up an online order at the {store} store instead of shipping?",
        "Do you combine shipping if I buy several volumes?",
        "What's the cheapest shipping option?",
        "Do you ship on weekends?",
        "Do you deliver to APO and FPO addresses?",
        "shipping rates to {country}?",
        "How fast is standard shipping?",
        "Do orders ship from Japan or from the US?",
        "Is your packaging plastic-free?",
        "Can I track international shipments?",
        "If I order today, when would it usually get to {country}?",
        "Does shipping cost more for the {format}?",
        "shipping to {country}",
        "do u ship to {country}",
        "Is shipping insured for expensive box sets?",
        "What's your shipping policy on {format} orders?",
        "Does express shipping to {country} include duties?",
        "Can I choose a delivery date?",
        "How heavy is the {title} box set for shipping?",
        "I live in {country} and want the whole {title} run, roughly what would shipping and import tax "
        "add on top of the price?",
        "Do you ship Japanese imports directly from Tokyo?",
        "Is there a flat shipping rate?",
        "do you deliver to rural areas",
        "Once an order ships, how long until it arrives in {country}?",
        "Do you ship preorders separately or all together?",
        "Does the shipping fee get refunded if I return something?",
        "How much is shipping on an order of {n} paperbacks?",
        "Can I pay extra at checkout for faster shipping?",
        "Do in-stock items ship the same day?",
    ),
    "return_request": (
        "I want to return {title} vol {vol}.",
        "How do I return a box set?",
        "My refund for order {order} hasn't come through yet.",
        "Can I exchange the {format} for the {format2}?",
        "I ordered the wrong volume, can I send it back?",
        "What's your return policy?",
        "Can I return an opened box set?",
        "Please send me a return label for {order}.",
        "I got {title} as a gift and already have it, can I return it?",
        "How long do refunds take?",
        "Return window for manga?",
        "I sent back {title} vol {vol} {days} days ago, when do I get my money back?",
        "Can I get store credit instead of a refund?",
        "Do I have to pay for return shipping?",
        "refund please, order {order}",
        "Can I return digital manga?",
        "I want to return the whole {title} set, it's never been opened.",
        "I bought {title} at the {store} store, can I return it online?",
        "Start a return for {order}",
        "Can I swap vol {vol} of {title} for vol {vol2}?",
        "How do I get a refund for a damaged {format}?",
        "return {title} {format}",
        "I accidentally bought the {format} of {title} twice, how do I return one?",
        "The {title} {format} is not what I expected, can I send it back for a refund?",
        "Is the return free if the item arrived damaged?",
        "I'd like my money back for {title} vol {vol}, please.",
        "Where do I drop off a return?",
        "Can I return a preorder bonus item?",
        "My return for order {order} was received but no refund yet.",
        "I ordered the Japanese {tankobon} of {title} by mistake, I wanted the English {format}. Can I "
        "return it and get the right one?",
        "exchange {title} vol {vol} please",
        "How do I return something I bought with a gift card?",
        "refund status for my return?",
        "The {title} {format} arrived damaged, I'd like a replacement.",
        "Order {order} came with the wrong volume, can I send it back for the right one?",
        "Can the refund go to my gift card instead of my card?",
        "Can I return the {title} box set at the {store} store?",
        "Order {order} arrived but I changed my mind, how do I send it back?",
        "I don't want the {title} {format} anymore, it's still sealed.",
    ),
    "complaint": (
        "The {title} box set arrived damaged.",
        "I received vol {vol} instead of vol {vol2}.",
        "The pages in {title} vol {vol} are printed upside down.",
        "Your customer service never answered my email.",
        "The {obi} on my {title} {format} was torn.",
        "The box was crushed and the corners of every volume are bent.",
        "The staff at the {store} store were really rude to me.",
        "I've been waiting {days} days and nobody replies, this is ridiculous.",
        "{title} vol {vol} is missing pages {page} to {page2}.",
        "Water damage on my {title} {format}, very disappointed.",
        "The collector's edition came without the art cards.",
        "Your packaging is terrible, third time my books arrive bent.",
        "The translation in {title} vol {vol} is full of typos.",
        "wrong item again!!",
        "I was sent a used copy of {title} vol {vol}.",
        "The print quality of the new {title} {format} is awful.",
        "This is the worst service, I'm never ordering again.",
        "Your website keeps logging me out in the middle of checkout, super frustrating.",
        "The courier threw my box over the fence.",
        "The spine of the {title} {format} cracked on the first read.",
        "I'm really unhappy with how my last order was handled.",
        "The {title} {format} smells like smoke.",
        "Half the box set is a different printing and the spines don't match.",
        "The {tokuten} {shikishi} was missing from my {title} order.",
        "Nobody at the {store} store knew anything about manga.",
        "your chat agent hung up on me",
        "The cover of {title} vol {vol} is scratched, not ok for a {price} book.",
        "I paid for express and it still took {days} days, terrible.",
        "The shrink wrap was ripped and the dust jacket is creased.",
        "I want to complain about the service at the {store} store.",
        "Three orders in a row have come with damaged corners and I've stopped believing anyone reads "
        "these messages. Disappointed as a long-time customer.",
        "the {title} {format} i got has a misprinted chapter",
        "Very bad experience with your support team.",
        "why do your boxes always arrive soaked",
        "I returned a damaged box set and the replacement was damaged too.",
        "Your shipping times are getting worse every month.",
        "My preorder was cancelled without any warning, really annoyed.",
        "The site said {title} was in stock but the shelf at {store} was empty.",
        "I was charged a restocking fee nobody told me about.",
        "The order tracking on your site is useless.",
    ),
    "preorder": (
        "Can I preorder {title} vol {next_vol}?",
        "When does {title} vol {next_vol} come out?",
        "Will I be charged now or when my preorder ships?",
        "Cancel my preorder for {title} vol {next_vol}.",
        "Is there a preorder bonus for the {title} {format}?",
        "Does preordering {title} vol {next_vol} get me a first printing?",
        "Do preorders get the {tokuten} {shikishi}?",
        "When will my preorder of {title} ship?",
        "Can I change the address on my preorder?",
        "Is the {title} collector's edition up for preorder yet?",
        "preorder {title} {next_vol} pls",
        "Will preorders of the {title} box set be limited?",
        "Do you take reservations for the Japanese edition of {title} vol {next_vol}?",
        "If the price drops before release, do preorders get the lower price?",
        "Release date for {title} vol {next_vol} in English?",
        "When is the next {title} volume?",
        "Reserve {title} {next_vol} for me at the {store} store.",
        "How do I preorder the {title} {format}?",
        "Can I preorder vol {next_vol} of {title} and pick it up on release day?",
        "Is {title} vol {next_vol} still on track for {month}?",
        "Do you ship preorders on release day?",
        "My preorder of the {title} {format} got pushed back, what's the new date?",
        "Can I combine my preorder with the volumes in stock?",
        "Preorder limit per customer for the {title} collector's edition?",
        "{title} {next_vol} preorder",
        "Will the {title} {format} be available to preorder in {country}?",
        "Is the preorder price for {title} vol {next_vol} {price}?",
        "I keep missing limited editions, so I'd like to preorder {title} vol {next_vol} and the next "
        "{format} as soon as they're listed. Is there a waitlist?",
        "Has the release date for {title} {next_vol} been announced?",
        "Can I preorder the {title} {kanzenban} from Japan?",
        "preorders for {month}?",
        "Do preorders get charged again if the release moves?",
        "Is my preorder for {title} vol {next_vol} going to ship on release day?",
        "Can I pay for my preorder with a gift card?",
        "Will {title} vol {next_vol} be in stock at the {store} store or should I preorder?",
        "Do preorders ship to {country}?",
        "Can I get a refund on my preorder if the release slips?",
        "Is {title} vol {next_vol} coming in the {format} too?",
    ),
    "payment_issue": (
        "My card was declined.",
        "I was charged twice for order {order}.",
        "PayPal isn't working at checkout.",
        "Can I pay in yen?",
        "My gift card won't apply.",
        "Promo code {code} doesn't work.",
        "Why was I charged {price} when the total said less?",
        "Do you take Apple Pay?",
        "Payment failed but the money left my account.",
        "Can I split a payment between two cards?",
        "The checkout page errors out when I enter my card.",
        "I was charged for an order I cancelled.",
        "Is it safe to save my card on the site?",
        "My bank flagged your charge as fraud.",
        "Do you accept konbini payment?",
        "Can I pay cash on delivery?",
        "The tax on my receipt looks wrong.",
        "Why is there a currency conversion fee on my {price} charge?",
        "Do you have a buy now pay later option?",
        "Can I get an invoice for order {order}?",
        "card declined again",
        "The {code} discount wasn't applied to my {title} {format}.",
        "There's a pending charge of {price} I don't recognise.",
        "Can I change the card on order {order}?",
        "Why did my payment go through twice?",
        "payment keeps failing on the {title} box set",
        "Do you accept JCB cards?",
        "I used a gift card and the balance is wrong.",
        "Checkout says my billing address doesn't match even though it does, I've tried three different "
        "cards and every one of them gets rejected.",
        "Can I pay with points and a card together?",
        "Charged in dollars instead of yen?",
        "receipt for my purchase please",
        "My order {order} went through but I was charged twice.",
        "The refund went to my old card, which is closed now.",
        "Why was my preorder charged already?",
        "My account shows a failed payment for order {order}.",
        "Can I use my points to pay for a box set?",
        "The {title} {format} was {price} at checkout but my bank shows more.",
    ),
    "account_help": (
        "I forgot my password.",
        "How do I change my email to {email}?",
        "I can't log in to my account.",
        "Please delete my account.",
        "My loyalty points disappeared from my account.",
        "How do I update the address saved in my profile?",
        "I didn't get the verification email.",
        "My account is locked.",
        "Can I merge two accounts?",
        "How do I turn off marketing emails?",
        "How do I change the name on my account?",
        "My two-factor code isn't arriving.",
        "Where do I see my order history?",
        "How do I add {title} to my wishlist?",
        "Unsubscribe {email} from the newsletter.",
        "Log in with Google isn't working.",
        "How many points do I have?",
        "Is my {store} store stamp card linked to my online account?",
        "reset password",
        "cant sign in",
        "My wishlist is empty even though I added {title}.",
        "Change my username please.",
        "Someone else may have access to my account.",
        "How do I become a member?",
        "The password reset link has expired.",
        "Can I have two shipping addresses saved on my account?",
        "Why did my membership tier drop?",
        "My account was created with {email} but I no longer have access to it, how do I log in now?",
        "How do I download my data?",
        "Notifications for {title} releases aren't turning on in my account settings.",
        "my account page is blank",
        "I signed up twice by accident with two emails and now my points and my wishlist are split "
        "between them, can you fix that?",
        "log in problems on the app",
        "How do I remove a saved card from my account?",
        "How do I see my preorders in my account?",
        "My order history doesn't show order {order}.",
        "Where do I change my default shipping address?",
        "I want to stop the recommendation emails.",
        "My points from the {store} store never showed up in my account.",
    ),
    "store_availability": (
        "Is {title} vol {vol} in stock?",
        "Do you have {title} vol {vol} at the {store} store?",
        "When will {title} vol {vol} be back in stock?",
        "Is the {title} {format} sold out?",
        "Any copies of {title} {vol} left?",
        "Does the {store} store carry Japanese-language {title}?",
        "Do you have the full {title} set in store?",
        "Can you check if {store} has {title} vol {vol}?",
        "{title} vol {vol} out of stock again?",
        "Which stores have the {title} collector's edition?",
        "How often do you restock {publisher} titles?",
        "Is {title} {vol} available online or only in store?",
        "Can you hold {title} vol {vol} for me at {store}?",
        "Notify me when {title} vol {vol} is back.",
        "Do you still have the {title} {format} in stock?",
        "Do you have {title} in {tankobon}?",
        "in stock? {title} {vol}",
        "Is the {title} box set available in the {store} store today?",
        "Does any store near {store} have {title} vols {vol} to {vol2}?",
        "Online it says {title} vol {vol} is unavailable, will it come back?",
        "do you carry {author}'s books",
        "Are there signed copies of {title} at the {store} store?",
        "How many {title} {vol} are left?",
        "I've been to the {store} store twice and {title} vol {vol} was missing from the shelf, do you "
        "expect more copies soon or should I order online?",
        "is the {title} {format} back",
        "Do you stock {publisher} imports?",
        "Can I buy {title} vol {vol} in person at {store}?",
        "stock check {title} {format}",
        "Will the {store} store get the {title} {format}?",
        "Where can I find {title} vol {vol}, every store is out.",
        "Is {title} vol {vol} in stock or do I need to order it?",
        "Has the {store} store got the new {title} volume that came out this week?",
        "Is the {title} box set in a store near me, or only online?",
        "Do you have {title} vol {vol} or do I have to wait for a restock?",
        "Is {title} vol {vol} on the shelf at {store} or only for order?",
        "Does {store} have the {title} {format} I saw on your site?",
    ),
}

# Near-identical phrasings whose label rests on one cue: a word, who the question is about, whether a remedy
# is asked for, or a volume number past the last published one (a preorder; the catalogue decides).
CUE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "return_request": (
        "My refund for order {order} hasn't arrived.",
        "Still waiting on my refund, it's been {days} days.",
        "The {title} {format} arrived damaged, what do I do now?",
        "I got vol {vol} instead of vol {vol2}, how do I fix this?",
    ),
    "order_status": (
        "My order {order} hasn't arrived.",
        "Still waiting on my order, it's been {days} days.",
        "where is my replacement",
        "When will my order ship?",
        "When will my {title} vol {vol} ship?",
    ),
    "complaint": (
        "My order {order} hasn't arrived and nobody answers, unacceptable.",
        "The {title} {format} arrived damaged.",
        "I got vol {vol} instead of vol {vol2}, again.",
        "I was charged twice and support ignored me for a week.",
    ),
    "shipping": (
        "When will orders placed today ship?",
        "When do {title} orders usually ship?",
        "How long does {title} take to arrive in {country}?",
    ),
    "preorder": (
        "Is {title} vol {next_vol} out yet?",
        "Do you have {title} vol {next_vol}?",
        "How much is {title} vol {next_vol}?",
        "When will my {title} vol {next_vol} ship?",
        "{title} vol {next_vol}",
        "{title} {next_vol} price",
        "Is {title} {next_vol} in English?",
        "{title} vol {next_vol} in stock?",
        "Can I get {title} vol {next_vol} at the {store} store?",
        "{title} {next_vol} paperback",
    ),
    "store_availability": (
        "Is {title} vol {vol} out yet?",
        "Do you have {title} vol {vol}?",
        "{title} vol {vol}",
        "{title} vol {vol} in stock?",
        "Can I get {title} vol {vol} at the {store} store?",
        "{title} {vol} paperback",
        "Do you have {title} in hardcover?",
    ),
    "product_inquiry": (
        "How much is {title} vol {vol}?",
        "{title} {vol} price",
        "Is {title} {vol} in English?",
        "Is there {title} in hardcover?",
        "Is {title} violent?",
        "Is {title} long?",
    ),
    "recommendation": (
        "Is {title} good?",
        "Is {title} violent? It's for my nephew.",
        "Is {title} too long to start now?",
    ),
    "payment_issue": (
        "My points weren't applied at checkout.",
        "I was charged twice.",
    ),
    "account_help": (
        "My points weren't added to my account.",
        "I can't see order {order} in my account.",
    ),
}

# When one message holds two requests, it is labelled with the one an agent must act on first.
URGENCY: tuple[str, ...] = (
    "complaint",
    "payment_issue",
    "return_request",
    "order_status",
    "account_help",
    "preorder",
    "store_availability",
    "shipping",
    "product_inquiry",
    "recommendation",
)

# Short second requests that customers tack onto a message.
SIDE_QUESTIONS: dict[str, tuple[str, ...]] = {
    "product_inquiry": ("is {title} finished", "how many volumes is {title}", "is the {format} in english"),
    "recommendation": ("anything else like {title}", "what should I read next", "is {title} good"),
    "order_status": ("where is my other order", "has {order} shipped", "any news on my order"),
    "shipping": ("do you ship to {country}", "how much is express shipping", "is shipping free"),
    "return_request": ("can I return vol {vol}", "how do refunds work", "I need a return label"),
    "complaint": ("your support never replies", "the last box came crushed", "the site is so slow"),
    "preorder": (
        "can I preorder {title} vol {next_vol}",
        "when is the next volume out",
        "any preorder bonus",
    ),
    "payment_issue": ("my card got declined", "can I pay with PayPal", "the promo code failed"),
    "account_help": ("I can't log in", "my points are gone", "how do I reset my password"),
    "store_availability": (
        "is {title} vol {vol} in stock",
        "does the {store} store have it",
        "any copies left",
    ),
}
SIDE_CONNECTORS = (", also ", ". Also ", " and ", ". btw ", ", oh and ", ". P.S. ", " + ")

# Background customers give before the actual request; it borrows other intents' words on purpose.
CONTEXT_SENTENCES = (
    "I ordered {title} vol {vol} from you last week and it arrived fine.",
    "My last box set shipped really fast, so thanks for that.",
    "I returned a book last month and that was easy.",
    "I usually shop at the {store} store.",
    "I paid with PayPal last time.",
    "I've preordered from you before.",
    "My account is under {email}.",
    "My friend recommended your shop.",
    "I'm collecting the whole {title} series.",
    "I just finished reading {title}.",
    "I bought the {title} {format} for my {age} year old.",
    "I had a damaged book once and you sorted it out quickly.",
    "I'm in {country} right now.",
    "I'm a member and have lots of points.",
    "I'm shopping for my niece.",
    "I love the {title} anime.",
)
OPENERS = (
    "hi,",
    "hello,",
    "hey,",
    "hey there,",
    "quick question:",
    "excuse me,",
    "sorry to bother you but",
    "good morning,",
    "hi team,",
)
CLOSERS = ("thanks", "thx", "thank you!", "please help", "asap please", "cheers", "ty", "thanks in advance")

PROMO_CODES = ("MANGA10", "SPRING15", "WELCOME5", "OTAKU20", "FREESHIP", "JUMP25")
EMAIL_NAMES = (
    "yuki.tanaka",
    "sam.r",
    "mangafan88",
    "otaku_jen",
    "kenji.s",
    "lee.b",
    "mika2001",
    "alex.m",
    "reader42",
    "haru.k",
    "sora_books",
    "jo.p",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
EMOJI = ("🙏", "😭", "📦", "😡", "✨", "📚", "❤️", "🥺", "😅", "👍")


def _keyboard_neighbours() -> dict[str, str]:
    neighbours: dict[str, str] = {}
    for row_index, row in enumerate(KEYBOARD_ROWS):
        for column, key in enumerate(row):
            near = [row[i] for i in (column - 1, column + 1) if 0 <= i < len(row)]
            for other in (row_index - 1, row_index + 1):
                if 0 <= other < len(KEYBOARD_ROWS):
                    near += [
                        KEYBOARD_ROWS[other][i]
                        for i in (column - 1, column)
                        if 0 <= i < len(KEYBOARD_ROWS[other])
                    ]
            neighbours[key] = "".join(near)
    return neighbours


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()


@dataclass(frozen=True)
class Filled:
    """A template with its slots filled, and the titles it mentions (query logs filter them by date)."""

    text: str
    titles: tuple[Title, ...]


@dataclass
class SlotFiller:
    """Fills `{slot}` templates from the catalogue; the slots of one template describe one consistent product.

    `order_styles` lists how order numbers are written: "MA-12345678" ("ma") or "#12345678" ("hash").
    """

    rng: random.Random
    titles: Sequence[Title] = TITLES
    title_weights: Sequence[float] | None = None
    order_styles: tuple[str, ...] = ("ma",)
    _chosen: list[Title] = field(default_factory=list, init=False, repr=False)

    def fill(self, template: str) -> Filled:
        self._chosen = []
        values: dict[str, str] = {}
        for _, slot, _, _ in string.Formatter().parse(template):
            if slot and slot not in values:
                values[slot] = self._value(slot, values)
        return Filled(template.format(**values), tuple(self._chosen))

    def _title(self, index: int) -> Title:
        while len(self._chosen) <= index:
            title = self.rng.choices(self.titles, weights=self.title_weights)[0]
            if all(title is not chosen for chosen in self._chosen):
                self._chosen.append(title)
        return self._chosen[index]

    def _title_name(self, title: Title) -> str:
        if title.aliases and self.rng.random() < 0.3:
            return self.rng.choice(title.aliases)
        return title.name

    def _value(self, slot: str, values: dict[str, str]) -> str:
        rng = self.rng
        if slot in ("title", "title2"):
            return self._title_name(self._title(0 if slot == "title" else 1))
        if slot in ("vol", "vol2"):
            volumes = max(self._title(0).volumes, 2)
            first = int(values["vol"]) if "vol" in values else None
            choices = [n for n in range(1, volumes + 1) if n != first]
            return str(rng.choice(choices))
        if slot == "next_vol":
            return str(self._title(0).volumes + rng.choice((1, 1, 1, 2)))
        if slot == "author":
            return self._title(0).author
        if slot == "publisher":
            return self._title(0).publisher
        if slot in ("format", "format2"):
            taken = values.get("format")
            return rng.choice([f.name for f in FORMATS if f.name != taken])
        if slot == "price":
            return _price(rng, _format_named(values.get("format")) or rng.choice(FORMATS))
        if slot == "order":
            return _order_number(rng, rng.choice(self.order_styles))
        if slot == "email":
            return f"{rng.choice(EMAIL_NAMES)}{rng.choice(('', str(rng.randint(1, 99))))}@example.com"
        if slot in ("page", "page2"):
            return str(rng.randint(40, 90) if slot == "page" else int(values["page"]) + rng.randint(2, 16))
        return _plain_value(rng, slot)


def _plain_value(rng: random.Random, slot: str) -> str:
    simple: dict[str, Sequence[str]] = {
        "country": COUNTRIES,
        "store": STORES,
        "genre": GENRES,
        "weekday": WEEKDAYS,
        "month": MONTHS,
        "code": PROMO_CODES,
    }
    if slot in simple:
        return rng.choice(simple[slot])
    if slot == "demo":
        return rng.choice(DEMOGRAPHICS[rng.choice(list(DEMOGRAPHICS))])
    romaji = {
        "tankobon": "tankōbon",
        "kanzenban": "kanzenban",
        "aizoban": "aizōban",
        "obi": "obi",
        "tokuten": "tokuten",
        "shikishi": "shikishi",
    }
    if slot in romaji:
        return rng.choice(ROMAJI_SHOP_TERMS[romaji[slot]])
    numbers = {"days": (2, 21), "age": (8, 16), "n": (2, 12)}
    if slot in numbers:
        return str(rng.randint(*numbers[slot]))
    raise KeyError(f"template slot {{{slot}}} has no filler; add it to SlotFiller or fix the template")


def _format_named(name: str | None) -> Format | None:
    return next((f for f in FORMATS if f.name == name), None)


def _price(rng: random.Random, product_format: Format) -> str:
    if rng.random() < 0.25:
        low, high = product_format.jpy
        return f"¥{round(rng.randint(low, high), -1):,}"
    low_usd, high_usd = product_format.usd
    return f"${int(rng.uniform(low_usd, high_usd)) + 0.99:.2f}"


def _order_number(rng: random.Random, style: str) -> str:
    digits = f"{rng.randint(10_000_000, 99_999_999)}"
    return f"#{digits}" if style == "hash" else f"MA-{digits}"


def add_typo(word: str, rng: random.Random) -> str:
    """One slip of the finger: a swapped pair, a neighbouring key, a dropped or a doubled letter."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word
    i = rng.choice(letters[1:])
    kind = rng.choice(("swap", "neighbour", "drop", "double"))
    if kind == "swap" and i + 1 < len(word) and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "neighbour" and word[i].lower() in KEYBOARD_NEIGHBOURS:
        replacement = rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()])
        return word[:i] + (replacement.upper() if word[i].isupper() else replacement) + word[i + 1 :]
    if kind == "double":
        return word[: i + 1] + word[i] + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def with_typos(text: str, rng: random.Random, count: int = 1) -> str:
    """Typos only in plain words: order numbers, emails and prices must stay intact."""
    words = text.split(" ")
    plain = [i for i, word in enumerate(words) if word.isascii() and word.isalpha() and len(word) >= 3]
    for i in rng.sample(plain, min(count, len(plain))):
        words[i] = add_typo(words[i], rng)
    return " ".join(words)


def recase(text: str, rng: random.Random) -> str:
    """Casing as customers type it: mostly lower or as written, sometimes shouting, sometimes odd."""
    draw = rng.random()
    if draw < 0.45:
        return text.lower()
    if draw < 0.49:
        return text.upper()
    if draw < 0.53:
        return " ".join(word.capitalize() for word in text.split(" "))
    if draw < 0.56:
        return " ".join(word.upper() if rng.random() < 0.3 else word for word in text.split(" "))
    return text


def add_noise(text: str, rng: random.Random, typo_rate: float = 0.22) -> str:
    """Typos, casing, punctuation, romaji fillers and emoji at the rates a store's inbox shows."""
    if rng.random() < typo_rate:
        text = with_typos(text, rng, count=rng.choice((1, 1, 1, 2)))
    text = recase(text, rng)
    draw = rng.random()
    if draw < 0.35:
        text = text.rstrip("?.!")
    elif draw < 0.40:
        text = text.rstrip("?.!") + rng.choice(("??", "???", "!!", "?!"))
    if rng.random() < 0.15:
        text = text.replace("'", "").replace(",", "")
    if rng.random() < 0.04:
        filler = rng.choice(ROMAJI_FILLERS)
        text = f"{filler}, {text}" if rng.random() < 0.5 else f"{text} {filler}"
    if rng.random() < 0.02:
        text = f"{text} {rng.choice(EMOJI)}"
    return text


def _word_count_ok(text: str) -> bool:
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS


@dataclass(frozen=True)
class _Row:
    text: str
    label: str
    kind: str


def _label_targets(total: int) -> dict[str, int]:
    scale = total / sum(LABEL_WEIGHTS.values())
    targets = {label: round(weight * scale) for label, weight in LABEL_WEIGHTS.items()}
    targets[LABELS[0]] += total - sum(targets.values())
    return targets


def _hard_row_plan(rng: random.Random, total: int, ambiguous_fraction: float) -> list[tuple[str, str]]:
    """(label, kind) of each hard row: three fifths single-cue phrasings, two fifths two-request messages."""
    n_hard = round(total * ambiguous_fraction)
    n_multi = n_hard * 2 // 5
    cue_labels = [label for label in LABELS for _ in CUE_TEMPLATES[label]]
    plan = [(rng.choice(cue_labels), "cue") for _ in range(n_hard - n_multi)]
    plan += [(rng.choice(URGENCY[:-1]), "multi") for _ in range(n_multi)]
    return plan


def with_small_talk(text: str, filler: SlotFiller, rng: random.Random, context_rate: float = 0.25) -> str:
    """Greetings, background and sign-offs around the request, as customers write them."""
    if rng.random() < context_rate:
        text = f"{filler.fill(rng.choice(CONTEXT_SENTENCES)).text} {text}"
    if rng.random() < 0.12:
        text = f"{rng.choice(OPENERS)} {text[0].lower()}{text[1:]}"
    if rng.random() < 0.1:
        text = f"{text} {rng.choice(CLOSERS)}"
    return text


def _compose(label: str, kind: str, filler: SlotFiller, rng: random.Random) -> str:
    if kind == "cue":
        return add_noise(filler.fill(rng.choice(CUE_TEMPLATES[label])).text, rng, typo_rate=0.12)
    main = filler.fill(rng.choice(TEMPLATES[label])).text
    if kind == "multi":
        less_urgent = rng.choice(URGENCY[URGENCY.index(label) + 1 :])
        other = filler.fill(rng.choice(TEMPLATES[less_urgent] + SIDE_QUESTIONS[less_urgent])).text
        first, second = (main, other) if rng.random() < 0.5 else (other, main)
        return add_noise(
            first.rstrip("?.!") + rng.choice(SIDE_CONNECTORS) + second[0].lower() + second[1:], rng
        )
    return add_noise(with_small_talk(main, filler, rng), rng)


def generate_intents(seed: int = 7, total: int = 3000, *, ambiguous_fraction: float = 0.16) -> pd.DataFrame:
    """The labelled set: columns text, label, split; deterministic for (seed, total, ambiguous_fraction)."""
    rows = generate_intent_rows(seed, total, ambiguous_fraction=ambiguous_fraction)
    return rows[["text", "label", "split"]]


def generate_intent_rows(
    seed: int = 7, total: int = 3000, *, ambiguous_fraction: float = 0.16
) -> pd.DataFrame:
    """The labelled set with a `kind` column (regular, cue or multi) saying which rows are hard on purpose."""
    rng = random.Random(seed)
    titles = titles_trending_on(LABELLED_AS_OF)
    filler = SlotFiller(rng, titles, title_weights=[1 / (rank + 1) ** 0.5 for rank in range(len(titles))])
    plan = _hard_row_plan(rng, total, ambiguous_fraction)
    hard_per_label = {label: sum(1 for name, _ in plan if name == label) for label in LABELS}
    for label, target in _label_targets(total).items():
        plan += [(label, "regular")] * max(target - hard_per_label[label], 0)

    rows: list[_Row] = []
    seen: set[str] = set()
    for label, kind in plan:
        for _attempt in range(200):
            text = _compose(label, kind, filler, rng)
            if _word_count_ok(text) and text_key(text) not in seen:
                seen.add(text_key(text))
                rows.append(_Row(text, label, kind))
                break
        else:
            raise RuntimeError(f"could not write a new '{label}' ({kind}) text; add templates for it")
    rng.shuffle(rows)
    splits = stratified_split(
        [row.text for row in rows],
        [f"{row.label}/{row.kind}" for row in rows],
        validation_fraction=0.1,
        test_fraction=0.1,
        seed=seed,
    )
    return pd.DataFrame(
        {
            "text": [row.text for row in rows],
            "label": [row.label for row in rows],
            "split": splits,
            "kind": [row.kind for row in rows],
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rewrite the packaged labelled manga intent set.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--total", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=INTENTS_CSV)
    args = parser.parse_args(argv)
    frame = generate_intents(seed=args.seed, total=args.total)
    frame.to_csv(args.out, index=False, lineterminator="\n")
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    print(f"wrote {len(frame)} rows to {args.out}\n{counts.to_string()}")


if __name__ == "__main__":
    main()
