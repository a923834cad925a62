"""Procedural data for train.py / evaluate.py: the node's preprocessing ported
to Python, pens that re-draw digits, paper, and non-digit drawings."""
