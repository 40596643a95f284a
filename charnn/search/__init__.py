"""Hyperparameter search (charnn sweep) on Optuna: the sweep file (spec.py) and the study with its workers
(study.py).

It may import charnn.training and everything below it.
"""
