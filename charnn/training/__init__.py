"""Training and its files: the loop, checkpoints (and their hostile-file checks), run directories.

It may import charnn.nn, charnn.data and the modules below them; nothing here prints or exits: the
loop reports through a Callback.
"""
