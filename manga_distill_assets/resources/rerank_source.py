"""Where the reranker's graded pairs come from: generated from the catalogue, or a user's relevance file.

A resource rather than run config, so the nightly automation and a hand-launched run read the same source.
"""

import dagster as dg

from manga_distill_assets.data.rerank_file import CheckedPairs, read_rerank_file


class RerankPairsSource(dg.ConfigurableResource):
    """`path` empty: the packaged pairs generated from the catalogue (see `rerank_queries`' config); otherwise
    a CSV or Parquet file with query_id, query, doc_id, doc, grade (0-3) and split columns, or a click log
    (query, doc_id, doc, clicked; graded from its click-through rates), checked and with its unrankable
    queries skipped (counted in `CheckedPairs.skipped`)."""

    path: str = ""

    def load(self) -> CheckedPairs | None:
        return read_rerank_file(self.path) if self.path else None
