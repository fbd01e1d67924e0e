"""The code location for Kubernetes: the shipped graph, with every step of every run in its own pod.

`k8s_job_executor` launches each step as a Kubernetes Job, so the training steps' `dagster-k8s/config` op tags
(one GPU, a GPU node) apply to exactly those steps while the data steps run on ordinary nodes. Point the
user-code deployment at this file (`dagster api grpc --python-file deploy/k8s/definitions.py`); the local
default (`manga_distill_assets.definitions`) keeps the in-process executor.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from manga_distill_assets.definitions import defs as shipped_defs

defs = dg.Definitions.merge(shipped_defs, dg.Definitions(executor=k8s_job_executor))
