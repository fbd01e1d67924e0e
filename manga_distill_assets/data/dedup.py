"""Exact and near-duplicate removal for customer queries.

Duplicates would make the student over-fit a handful of popular questions, and would let a query slip into
training as a typo variant of an evaluation text. Two texts are

- *exact* duplicates when their `dedup_key`s are equal (case, punctuation and spacing ignored), and
- *near* duplicates when the Jaccard similarity of the sets of character `shingle`-grams of their keys is at
  least `threshold` ("do you have one piece vol 105" and "do you have one pice vol 105": 0.83).

Exact duplicates are grouped with a hash table. Near duplicates are searched among the distinct keys only and
clustered around leaders: walking the keys in first-seen order, a key collapses into the earliest already kept
key it is a near duplicate of, and is kept (becomes a leader) otherwise. Clusters are therefore stars, never
chains: every removed text is itself a near duplicate of the text that represents it, the representative is
the first-seen text of its cluster, and a text placed first (an evaluation text) claims every later near
duplicate of it unless it is removed itself. Clustering transitively instead (connected components of the
near-duplicate pairs) lets chains of one-character steps merge "is one piece vol 109 the last one or is there
a 40" with "... vol 13 ... a 22": on a million generated queries one chain swallowed over 3,000 distinct
questions, variety that a transfer set needs. The price is that which texts are kept depends on the order of
the input.

Every near-duplicate pair is confirmed with the true Jaccard similarity of its shingle sets, so no text is
ever removed below the threshold, and no two kept texts are a confirmed pair among the candidates.

Keys are decided in rounds over all candidate pairs at once, not one at a time: a key whose earliest
remaining candidate partner is kept and confirmed collapses into it; a key whose partners were all removed or
are not near duplicates after all is kept; pairs from removed keys are dropped unchecked. The earliest
undecided key can always be decided, so the rounds end (about a hundred for a million queries), and only pairs
from kept keys are ever checked exactly: a tenth of the candidates.

Where candidates come from:

- Up to `EXACT_PAIR_LIMIT` pairs (about 300 distinct keys), every pair is compared: exact, and cheaper than
  sketching. Then no two kept texts have a similarity at or above the threshold.
- Beyond that, MinHash signatures (`num_perm` permutations) and LSH banding propose the candidates. A pair of
  similarity J agrees on a whole band of `rows` values with probability J**rows, so it becomes a candidate
  with probability 1 - (1 - J**rows)**bands. Because candidates are confirmed exactly, a spurious one costs
  only time while a missed one leaves a duplicate behind, so `choose_bands` minimises the integrated miss
  probability above the threshold weighted `MISS_WEIGHT` against the integrated candidate probability below
  it. For the defaults (0.8, 64 permutations) that is 9 bands of 7 rows: a pair at J = 0.80 becomes a
  candidate with probability 0.88, at 0.85 with 0.97, at 0.90 with 0.997. Recall near the threshold is the
  price of speed: among short templated queries the pairs just below the threshold far outnumber those above
  it, and a banding that caught nearly every pair at exactly 0.8 would send tens of millions of them to the
  exact check. So above the exact limit, two kept texts can still be near duplicates, with the probability
  above.
- A candidate whose signatures agree on too few values is dropped (a pair exactly at the threshold is dropped
  with probability `ESTIMATE_MISS`); the rest are held, 8 bytes each, until the rounds end (about 26 per
  distinct key on the generated queries).
- An LSH bucket of more than `MAX_BUCKET` texts (thousands of queries from one template) is split further by
  the signature values outside its band. Memory grows with the number of distinct keys (about a
  kilobyte each) and with the candidates, never with the square of either.

Why this is written here rather than taken from a library: beside `datasketch` (2.0, the well-kept
MinHash-LSH library), this one is both the faster and the more exact. `benchmarks/dedup_libraries.py --n
100000 --exact-sample 3000` (69,431 distinct keys, one pinned core, the other core busy): our whole
`deduplicate` took 2.35 s, datasketch's signatures and LSH alone 10.42 s (it builds signatures per text in
Python; these are built for batches of keys in numpy). On 3,000 keys compared pair by pair (370 pairs at
Jaccard >= 0.8), datasketch's LSH proposed 61% of them as candidates at its default banding, while ours left
13 of them (3.5%) between kept texts. datasketch also returns candidates, not clusters, so the exact
confirmation, the star clustering and the bucket splitting would stay ours in any case.

Everything is deterministic: shingles are hashed with fixed arithmetic (never Python's salted `hash()`) and
the permutations come from a seeded numpy generator, so the same texts give the same result in every process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from manga_distill_assets.data.normalize import dedup_key
from manga_distill_assets.data.shingles import (
    ShingleSets,
    minhash_signatures,
    mix64,
    sorted_unique,
    starts_of_runs,
)

EXACT_PAIR_LIMIT = 50_000
MISS_WEIGHT = 0.9
ESTIMATE_MISS = 0.01
MAX_BUCKET = 2048

_PAIR_CHUNK = 1 << 18
_CANDIDATE_BUFFER = 1 << 22

# What the leader clustering knows about a distinct key.
_UNDECIDED, _KEPT, _REMOVED = 0, 1, 2


@dataclass(frozen=True)
class DedupResult:
    """Which inputs survive deduplication, and which kept text every input collapsed into.

    `kept` holds input indices in first-seen order; `representative[i]` is the kept index that input `i`
    collapsed into (itself when it is kept).
    """

    kept: np.ndarray
    representative: np.ndarray
    exact_removed: int
    near_removed: int

    def frequencies(self) -> np.ndarray:
        """For every kept text, how many inputs (itself included) collapsed into it."""
        counts = np.bincount(self.representative, minlength=len(self.representative))
        return counts[self.kept]


def deduplicate(
    texts: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = 64,
    shingle: int = 3,
    seed: int = 1,
    pinned: int = 0,
) -> DedupResult:
    """Remove exact duplicates (by `dedup_key`), then near duplicates (shingle Jaccard >= `threshold`).

    Texts are walked in order: a text collapses into the earliest kept text it is an exact or near duplicate
    of, and is kept otherwise. Texts shorter than `shingle` characters (after `dedup_key`) only ever match
    exactly. The first `pinned` texts are never collapsed into each other by similarity, so each of them
    claims its own near duplicates: a reference set (evaluation texts) placed first catches every text close
    to any one of its members.
    """
    _check_settings(threshold, num_perm, shingle)
    unique_of_input, first_input_of_unique, keys = _exact_groups(texts)
    pinned_keys = len(np.unique(unique_of_input[:pinned])) if pinned else 0
    leader = _near_duplicate_leaders(keys, threshold, num_perm, shingle, seed, pinned_keys)
    representative = first_input_of_unique[leader[unique_of_input]]
    kept = first_input_of_unique[leader == np.arange(len(keys))]
    return DedupResult(
        kept=kept,
        representative=representative,
        exact_removed=len(texts) - len(keys),
        near_removed=len(keys) - len(kept),
    )


@functools.cache
def choose_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that best separates pairs above and below `threshold`."""
    _check_settings(threshold, num_perm, shingle=1)
    below = np.linspace(0.0, threshold, 257)
    above = np.linspace(threshold, 1.0, 257)

    def cost(bands: int, rows: int) -> float:
        spurious = np.trapezoid(1.0 - (1.0 - below**rows) ** bands, below)
        missed = np.trapezoid((1.0 - above**rows) ** bands, above)
        return float(MISS_WEIGHT * missed + (1.0 - MISS_WEIGHT) * spurious)

    options = [(bands, rows) for rows in range(1, num_perm + 1) for bands in range(1, num_perm // rows + 1)]
    return min(options, key=lambda option: cost(*option))


def _check_settings(threshold: float, num_perm: int, shingle: int) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"near-duplicate threshold must be a Jaccard similarity in (0, 1], got {threshold!r}; "
            "0.8 is a good default (lower merges more loosely related queries)."
        )
    if num_perm < 1:
        raise ValueError(f"num_perm must be a positive number of MinHash permutations, got {num_perm!r}.")
    if shingle < 1:
        raise ValueError(f"shingle must be a positive number of characters, got {shingle!r}.")


def _exact_groups(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per input, the id of its distinct key (ids in first-seen order); per id, its first input; the keys."""
    ids: dict[str, int] = {}
    unique_of_input = np.fromiter(
        (ids.setdefault(dedup_key(text), len(ids)) for text in texts), dtype=np.int64, count=len(texts)
    )
    first_input_of_unique = np.full(len(ids), len(texts), dtype=np.int64)
    np.minimum.at(first_input_of_unique, unique_of_input, np.arange(len(texts), dtype=np.int64))
    return unique_of_input, first_input_of_unique, list(ids)


def _near_duplicate_leaders(
    keys: list[str], threshold: float, num_perm: int, shingle: int, seed: int, pinned_keys: int = 0
) -> np.ndarray:
    """For every key, the id of the kept key it collapses into (its own id when it is kept).

    Keys below `pinned_keys` are never the later side of a pair, so they are always kept.
    """
    leader = np.arange(len(keys), dtype=np.int64)
    comparable = np.flatnonzero(np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)) >= shingle)
    if len(comparable) < 2:
        return leader
    comparable_keys = [keys[i] for i in comparable]
    earlier, later = _candidate_pairs(comparable_keys, threshold, num_perm, shingle, seed)
    unpinned = comparable[later] >= pinned_keys
    earlier, later = earlier[unpinned], later[unpinned]
    shingle_sets = ShingleSets(comparable_keys, shingle)
    leaders = _leaders(
        len(comparable_keys),
        earlier,
        later,
        lambda first, second: shingle_sets.jaccard(first, second) >= threshold,
    )
    leader[comparable] = comparable[leaders]
    return leader


def _leaders(
    count: int,
    earlier: np.ndarray,
    later: np.ndarray,
    near_duplicates: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Leader clustering of keys 0..count-1 over pairs earlier[i] < later[i], sorted by later, then earlier.

    The result is that of the sequential walk (each key collapses into the earliest kept key it is a confirmed
    near duplicate of), computed in rounds; see the module docstring.
    """
    status = np.full(count, _UNDECIDED, dtype=np.int8)
    leader = np.arange(count, dtype=np.int64)
    confirmed = np.zeros(len(earlier), dtype=bool)
    while (undecided := status == _UNDECIDED).any():
        live = (status[earlier] != _REMOVED) & undecided[later]
        earlier, later, confirmed = earlier[live], later[live], confirmed[live]
        unchecked = np.flatnonzero((status[earlier] == _KEPT) & ~confirmed)
        similar = near_duplicates(earlier[unchecked], later[unchecked])
        confirmed[unchecked[similar]] = True
        live = np.ones(len(earlier), dtype=bool)
        live[unchecked[~similar]] = False
        earlier, later, confirmed = earlier[live], later[live], confirmed[live]
        # A key's earliest remaining partner decides it once that partner is kept (every earlier partner is
        # gone: removed, or no near duplicate after all); a key with no partner left is kept.
        earliest = np.flatnonzero(starts_of_runs(later))
        claimed = earliest[status[earlier[earliest]] == _KEPT]
        has_partner = np.zeros(count, dtype=bool)
        has_partner[later] = True
        status[undecided & ~has_partner] = _KEPT
        status[later[claimed]] = _REMOVED
        leader[later[claimed]] = earlier[claimed]
    return leader


def _candidate_pairs(
    keys: list[str], threshold: float, num_perm: int, shingle: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pairs (earlier, later) of key ids worth an exact check, sorted by later id, then earlier id.

    Pairs are packed into int64s and deduplicated every `_CANDIDATE_BUFFER` pairs, so a pair that several
    bands propose is held once.
    """
    n = len(keys)
    if n * (n - 1) // 2 <= EXACT_PAIR_LIMIT:
        later, earlier = np.tril_indices(n, k=-1)
        return earlier, later
    signatures = minhash_signatures(keys, shingle, num_perm, seed)
    low_bytes = signatures.astype(np.uint8)
    least_agreement = _least_agreement(threshold, num_perm)
    bands, rows = choose_bands(threshold, num_perm)
    packed = np.zeros(0, dtype=np.int64)
    buffer: list[np.ndarray] = []
    buffered = 0
    for band in range(bands):
        band_columns = range(band * rows, (band + 1) * rows)
        spare_columns = [column for column in range(num_perm) if column not in band_columns]
        members, sizes = _band_groups(signatures, band_columns, spare_columns)
        for first, second in _pairs_within_groups(members, sizes):
            plausible = _agreement(low_bytes, first, second) >= least_agreement
            first, second = first[plausible], second[plausible]
            buffer.append(np.maximum(first, second) * n + np.minimum(first, second))
            buffered += len(first)
            if buffered >= _CANDIDATE_BUFFER:
                packed = sorted_unique(np.concatenate([packed, *buffer]))
                buffer, buffered = [], 0
    packed = sorted_unique(np.concatenate([packed, *buffer]))
    return packed % n, packed // n


def _agreement(low_bytes: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """How many signature values each pair shares, a slice at a time (one LSH bucket can hold 2M pairs)."""
    shared = np.empty(len(first), dtype=np.int64)
    for start in range(0, len(first), _PAIR_CHUNK):
        window = slice(start, start + _PAIR_CHUNK)
        shared[window] = (low_bytes[first[window]] == low_bytes[second[window]]).sum(axis=1)
    return shared


def _least_agreement(threshold: float, num_perm: int) -> int:
    """The most signature values a pair must share so that one at `threshold` fails with <= ESTIMATE_MISS.

    At similarity J each value agrees with probability J (a little more with 8-bit values, which only makes
    the filter more lenient), so the agreement count is Binomial(num_perm, J).
    """
    if threshold >= 1.0:
        return num_perm

    def log_probability(k: int) -> float:
        return (
            math.lgamma(num_perm + 1)
            - math.lgamma(k + 1)
            - math.lgamma(num_perm - k + 1)
            + k * math.log(threshold)
            + (num_perm - k) * math.log1p(-threshold)
        )

    below = 0.0
    for k in range(num_perm + 1):
        below += math.exp(log_probability(k))
        if below > ESTIMATE_MISS:
            return k
    return num_perm


def _band_groups(
    signatures: np.ndarray, band_columns: range, spare_columns: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Texts that agree on every column of the band: (members, ordered group by group; group sizes >= 2).

    A group larger than MAX_BUCKET is split by one spare column after another. Texts still together when the
    columns run out have identical signatures; `_pairs_within_groups` links them through their first member.
    """
    keys = np.zeros(len(signatures), dtype=np.uint64)
    for column in band_columns:
        keys = mix64(keys ^ signatures[:, column].astype(np.uint64))
    members, sizes = _groups(keys)
    for column in spare_columns:
        if sizes.max(initial=0) <= MAX_BUCKET:
            break
        oversized = members[np.repeat(sizes > MAX_BUCKET, sizes)]
        keys[oversized] = mix64(keys[oversized] ^ signatures[oversized, column].astype(np.uint64))
        members, sizes = _groups(keys)
    return members, sizes


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices sharing a key, group after group, and the group sizes; groups of one are left out."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(starts_of_runs(sorted_keys))
    sizes = np.diff(np.append(starts, len(keys)))
    shared = sizes > 1
    return order[np.repeat(shared, sizes)], sizes[shared]


def _pairs_within_groups(members: np.ndarray, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All pairs inside each group (a star around the first member beyond MAX_BUCKET), in bounded chunks."""
    star = sizes > MAX_BUCKET
    pair_counts = np.where(star, sizes - 1, sizes * (sizes - 1) // 2)
    group_starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    chunk_of_group = np.cumsum(pair_counts) // _PAIR_CHUNK
    for chunk in sorted_unique(chunk_of_group):
        in_chunk = chunk_of_group == chunk
        yield _pairs_of(members, group_starts[in_chunk], sizes[in_chunk], star[in_chunk])


def _pairs_of(
    members: np.ndarray, starts: np.ndarray, sizes: np.ndarray, star: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each group at members[start : start + size], its pairs (first < second in member order)."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    rank = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    position = starts[group] + rank
    partners = np.where(star[group], np.where(rank == 0, sizes[group] - 1, 0), sizes[group] - 1 - rank)
    left = np.repeat(position, partners)
    offset = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
    return members[left], members[left + 1 + offset]
