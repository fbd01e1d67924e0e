"""Character shingles of dedup keys as integers: MinHash signatures for LSH candidates, and exact Jaccard
similarity of shingle sets, both vectorised with numpy so a million queries fit in seconds and in memory."""

from __future__ import annotations

import itertools

import numpy as np

# Code points are below 2**21, so a shingle of up to three characters packs into a uint64 without collisions;
# longer shingles wrap around and become a 64-bit polynomial hash.
_CODE_POINT_BASE = np.uint64(1 << 21)
_MINHASH_BATCH_SHINGLES = 1 << 20
_VERIFY_CHUNK = 1 << 16


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` by sorting: numpy 2.3+ hashes integers for `np.unique`, many times slower at this size."""
    ordered = np.sort(values)
    return ordered[starts_of_runs(ordered)]


def starts_of_runs(ordered: np.ndarray) -> np.ndarray:
    """True where a sorted array's value differs from the one before (and at the first element)."""
    starts = np.ones(len(ordered), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    return starts


def shingle_ids(keys: list[str], shingle: int) -> tuple[np.ndarray, np.ndarray]:
    """All shingles of all keys as uint64 ids, and where each key's shingles start (each key has one)."""
    code_points = np.frombuffer("".join(keys).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
        np.uint64
    )
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    window_ids = np.zeros(len(code_points) - shingle + 1, dtype=np.uint64)
    for offset in range(shingle):
        window_ids *= _CODE_POINT_BASE
        window_ids += code_points[offset : offset + len(window_ids)]
    counts = lengths - shingle + 1
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    text_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    positions = np.arange(counts.sum()) - np.repeat(starts - text_starts, counts)
    return window_ids[positions], starts


def mix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads structured ids evenly over 64 bits."""
    values = values ^ (values >> np.uint64(30))
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values


def minhash_signatures(keys: list[str], shingle: int, num_perm: int, seed: int) -> np.ndarray:
    """(len(keys), num_perm) uint32 MinHash signatures of the keys' shingle sets.

    Permutation k maps a 32-bit shingle hash x to the top 32 bits of (a_k * x + b_k) mod 2**64, the
    multiply-add-shift family, which is strongly universal for 32-bit keys.
    """
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    increments = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    signatures = np.empty((len(keys), num_perm), dtype=np.uint32)
    for first, last in key_batches(keys, shingle):
        ids, starts = shingle_ids(keys[first:last], shingle)
        hashes = mix64(ids) >> np.uint64(32)
        permuted = np.empty_like(hashes)
        for k in range(num_perm):
            np.multiply(hashes, multipliers[k], out=permuted)
            permuted += increments[k]
            permuted >>= np.uint64(32)
            signatures[first:last, k] = np.minimum.reduceat(permuted, starts)
    return signatures


def key_batches(keys: list[str], shingle: int) -> list[tuple[int, int]]:
    """Consecutive key ranges of about `_MINHASH_BATCH_SHINGLES` shingles each, to bound memory."""
    shingle_counts = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)) - shingle + 1
    batch_of_key = np.cumsum(shingle_counts) // _MINHASH_BATCH_SHINGLES
    boundaries = np.flatnonzero(np.diff(batch_of_key)) + 1
    return list(itertools.pairwise([0, *boundaries.tolist(), len(keys)]))


class ShingleSets:
    """Every key's distinct shingles as sorted ids into one shared vocabulary, for exact Jaccard at scale.

    Python sets of shingle strings would cost about 2 GB and minutes for a million queries; sorted integer
    arrays let numpy intersect a whole chunk of pairs at once.
    """

    def __init__(self, keys: list[str], shingle: int) -> None:
        batches = key_batches(keys, shingle)
        self._vocabulary = sorted_unique(
            np.concatenate(
                [sorted_unique(shingle_ids(keys[first:last], shingle)[0]) for first, last in batches]
            )
        )
        tokens, sizes = [], []
        for first, last in batches:
            ids, starts = shingle_ids(keys[first:last], shingle)
            text = np.repeat(np.arange(last - first), np.diff(np.append(starts, len(ids))))
            distinct = sorted_unique(text * len(self._vocabulary) + np.searchsorted(self._vocabulary, ids))
            tokens.append((distinct % len(self._vocabulary)).astype(np.int32))
            sizes.append(np.bincount(distinct // len(self._vocabulary), minlength=last - first))
        self._tokens = np.concatenate(tokens)
        self._sizes = np.concatenate(sizes)
        self._offsets = np.cumsum(self._sizes) - self._sizes

    def jaccard(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The exact Jaccard similarity of the shingle sets of keys first[i] and second[i]."""
        similarity = np.empty(len(first))
        for start in range(0, len(first), _VERIFY_CHUNK):
            window = slice(start, start + _VERIFY_CHUNK)
            similarity[window] = self._chunk_jaccard(first[window], second[window])
        return similarity

    def _chunk_jaccard(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        pair = np.arange(len(first))
        left_pair, left_tokens = self._tagged_tokens(pair, first)
        right_pair, right_tokens = self._tagged_tokens(pair, second)
        # Tagging every token with its pair makes each side one sorted array; a token of the left side
        # is shared when the right side holds the same (pair, token).
        left = left_pair * len(self._vocabulary) + left_tokens
        right = right_pair * len(self._vocabulary) + right_tokens
        found = np.minimum(np.searchsorted(right, left), len(right) - 1)
        common = np.bincount(left_pair[right[found] == left], minlength=len(first))
        return common / (self._sizes[first] + self._sizes[second] - common)

    def _tagged_tokens(self, pair: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes = self._sizes[keys]
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return np.repeat(pair, sizes), self._tokens[np.repeat(self._offsets[keys], sizes) + within]
