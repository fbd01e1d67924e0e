"""Automation that reacts to changed *content*, not to mere new materialisations.

`AutomationCondition.eager()` requests a child whenever a parent is materialised, even when the parent's
bytes are identical. Our data assets return content-hash `DataVersion`s, and every materialisation records
the data version of each input it read (Dagster's `dagster/input_data_version/<key>` tags). The condition here
compares those recorded versions with the versions the asset would read now, so a re-delivered day with the
same content, or a new day whose queries are all duplicates, stops the cascade exactly where the content stops
changing. Because the comparison is against what the asset last consumed (not against the previous tick), it
is also right after the daemon was down for a while.
"""

from collections.abc import Sequence
from hashlib import sha256

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG, get_input_data_version_tag


class InputDataVersionsChanged(dg.AutomationCondition[dg.AssetKey]):
    """True for an unpartitioned asset when any input's data version differs from the one it last read."""

    @property
    def name(self) -> str:
        return "input_data_versions_changed"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        if context.candidate_subset.is_empty or context.candidate_subset.is_partitioned:
            return dg.AutomationResult(context, context.get_empty_subset())
        view = context.asset_graph_view
        latest = view.instance.get_latest_materialization_event(context.key)
        if latest is None or latest.asset_materialization is None:
            return dg.AutomationResult(context, context.get_empty_subset())
        recorded = latest.asset_materialization.tags or {}
        for parent in context.asset_graph.get(context.key).parent_keys:
            current = _current_input_version(view, parent, context.candidate_subset)
            if current is not None and current != recorded.get(get_input_data_version_tag(parent)):
                return dg.AutomationResult(context, context.candidate_subset)
        return dg.AutomationResult(context, context.get_empty_subset())


def _current_input_version(view, parent: dg.AssetKey, subset) -> str | None:
    """The input data version Dagster would record if the asset ran now (None: parent never materialised).

    For a partitioned parent this mirrors Dagster's rule: sha256 over the mapped partitions' data versions,
    sorted by partition key.
    """
    instance = view.instance
    if not view.asset_graph.get(parent).is_partitioned:
        event = instance.get_latest_materialization_event(parent)
        if event is None or event.asset_materialization is None:
            return None
        return (event.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
    versions = []
    for partition in sorted(view.compute_parent_subset(parent, subset).expensively_compute_partition_keys()):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=parent, asset_partitions=[partition]), limit=1
        ).records
        if not records:
            return None
        materialization = records[0].asset_materialization
        versions.append((materialization.tags or {}).get(DATA_VERSION_TAG, "") if materialization else "")
    return sha256("".join(versions).encode("utf8")).hexdigest()


def _settled(optional: Sequence[str] = ()) -> dg.AutomationCondition:
    """Nothing upstream is missing (but the `optional` deps), running or about to run, and the asset is
    neither running nor failed last time.

    An asset whose parent is requested on the same tick waits for the parent's new content: else an asset
    that reads both a changed input and a parent about to change with it (stage 1 reads the new transfer set
    while the teacher it distils is refined on it) would train once on the old parent and again on the new.
    A failed run is not retried on every tick: a user looks at it, fixes it and materialises by hand.
    """
    return (
        ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(*optional))
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.execution_failed()
    )


def on_input_content_change(optional: Sequence[str] = ()) -> dg.AutomationCondition:
    """For unpartitioned assets: run when an input's content changed since this asset last read it.

    `optional` deps are read only under some config (`general_student` under `init: general`): one that was
    never materialised does not hold the asset back.
    """
    changed = InputDataVersionsChanged() | dg.AutomationCondition.missing()
    return (changed & _settled(optional)).with_label("on_input_content_change")


def on_window_content_change(*window_deps: str) -> dg.AutomationCondition:
    """For the latest daily window: run when a day inside it lands or gets new content.

    A day re-delivered with identical content keeps its data version and so requests nothing. Missing days
    inside the window do not block: a day that never landed is simply absent from the window. Any other
    missing input (the labelled set, for the leakage filter) does.
    """
    changed_day = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed())
    return (
        dg.AutomationCondition.in_latest_time_window()
        & changed_day.since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(*window_deps))
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("on_window_content_change")
