"""What a model learned and how well: scoring, dynamic evaluation, gradient flow, the report, the
experiments (memory span, bias and variance) and the figures (matplotlib, an optional extra).

It may import charnn.training, charnn.nn, charnn.data and the modules below them; it computes
results as data and never prints.
"""
