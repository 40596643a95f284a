"""The maths: the model and its cells, the plain reference model, optimizers, evaluation and sampling.

Everything here works on NumPy arrays and plain dicts of them (parameters, gradients, optimizer
state) and knows nothing of files, runs or terminals. It may import charnn.config (for types),
charnn.errors and charnn.data.vocab, and nothing above them.
"""
