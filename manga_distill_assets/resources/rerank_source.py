"""Where the reranker's graded pairs come from: generated from the catalogue, or a user's relevance file.

A resource rather than run config, so the nightly automation and a hand-launched run read the same source.
"""

import dagster as dg
import pandas as pd

from manga_distill_assets.data.rerank_file import read_rerank_file


class RerankPairsSource(dg.ConfigurableResource):
    """`path` empty: the packaged pairs generated from the catalogue (see `rerank_queries`' config); otherwise
    a CSV or Parquet file with query_id, query, doc_id, doc, grade (0-3) and split columns."""

    path: str = ""

    def load(self) -> pd.DataFrame | None:
        return read_rerank_file(self.path) if self.path else None
