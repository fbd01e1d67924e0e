"""Where trained models live: a content-addressed store, on local disk or on S3.

Assets never pass torch modules to each other. They save a model with ``save_pretrained`` into a folder,
``put`` it here, and pass the small JSON-able :class:`ModelRef` downstream; a downstream asset calls ``get``
to have the folder on local disk again.

A model's address is :func:`folder_sha256` of its folder, so storing the same files twice is a no-op, and a
reference can never silently point at different weights. Both stores use one layout::

    <root>/<kind>/<sha256[:16]>/...                the model's files, exactly as they were put
    <root>/<kind>/<sha256[:16]>.manifest.json      every file's path, size and sha256, written last

The manifest sits beside the folder, not in it, so the folder holds only the model's own files and
``folder_sha256(store.get(ref)) == ref.sha256``. A folder without its manifest is incomplete and never read.

Modules: ``ref`` (the :class:`ModelRef` value), ``manifest`` (pure content hashing: :func:`folder_sha256`),
``layout`` (the folders on disk), ``base`` (the :class:`ModelStore` interface), ``local_store`` and
``s3_store``; the S3 calls themselves are in ``resources/s3_calls.py``, shared with the IO manager.
"""

from manga_distill_assets.resources.model_store.base import ModelStore
from manga_distill_assets.resources.model_store.local_store import LocalModelStore
from manga_distill_assets.resources.model_store.ref import ModelRef
from manga_distill_assets.resources.model_store.s3_store import S3ModelStore

__all__ = ["LocalModelStore", "ModelRef", "ModelStore", "S3ModelStore"]
