"""Claude on AWS Bedrock as plain code: requests, prices, the run budget, dispatch, pacing and answers.

No Dagster here; `resources/claude.py` wraps it as the one Bedrock client that every asset calling Claude
uses.
"""
