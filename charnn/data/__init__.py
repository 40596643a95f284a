"""The data path: a text (file, inline or download) into a vocabulary and ids, split and cut into chunks.

Also the synthetic texts of the memory-span experiment. It may import charnn.config, charnn.errors,
charnn.files and charnn.procs, and nothing of the model or training.
"""
