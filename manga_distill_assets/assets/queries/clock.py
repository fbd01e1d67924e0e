"""One clock for a run that materialises day partitions and then what reads the latest of them."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg


@contextmanager
def partition_clock() -> Iterator[datetime]:
    """Yields now and holds Dagster's partition clock there until the block ends.

    `teacher_soft_labels` and the other transfer-set readers take `unlabeled_queries` through
    `LastPartitionMapping`, which Dagster resolves against the current time: a command that lands the days up
    to yesterday and then trains for half an hour past midnight UTC would otherwise ask for a day nobody
    landed. Days computed from the yielded time are the partitions every step of the block sees.
    """
    now = datetime.now(UTC)
    with dg.partition_loading_context(effective_dt=now):
        yield now
