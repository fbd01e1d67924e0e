"""How much of a text a finished classifier reads when it scores it: one number for PyTorch and ONNX alike.

A module of its own, with no imports, so that the ONNX side (`onnx_export`, and everything that serves or
times a graph) can share it with `evaluation` without loading evaluation's plotting and metrics libraries.
"""

SCORING_MAX_LENGTH = 128
"""Tokens a finished classifier reads of a text when it scores it, in PyTorch or ONNX: twice the 64 its
training reads by default (`TrainingKnobs.max_length`), so scoring does not cut what training read in full,
and every runtime cuts at the same place."""
