"""A command that lands the days up to yesterday and trains past midnight UTC still reads the days it
landed."""

from datetime import timedelta

import dagster as dg
from dagster._core.test_utils import freeze_time

from manga_distill_assets.assets.queries.assets import daily_partitions
from manga_distill_assets.assets.queries.clock import partition_clock


@dg.asset(partitions_def=daily_partitions)
def landed_day(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.asset(ins={"landed_day": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())})
def latest_day_reader(landed_day: str) -> str:
    return landed_day


def test_the_latest_partition_stays_the_one_of_the_blocks_start_after_midnight():
    instance = dg.DagsterInstance.ephemeral()
    with partition_clock() as started:
        yesterday = (started - timedelta(days=1)).date().isoformat()
        landed = dg.materialize([landed_day], partition_key=yesterday, instance=instance)
        assert landed.success
        with freeze_time(started + timedelta(days=1)):
            both = [landed_day, latest_day_reader]
            read = dg.materialize(both, selection=[latest_day_reader], instance=instance)
            assert read.output_for_node("latest_day_reader") == yesterday


def test_outside_the_block_the_latest_partition_follows_dagsters_clock():
    with partition_clock() as started:
        pass
    with freeze_time(started + timedelta(days=1)):
        assert daily_partitions.get_last_partition_key() == started.date().isoformat()
