"""Distillation experiments as assets: temperature, α, recipe and transfer-data studies over several seeds,
one static partition per variant, and a report that compares them."""
