"""Defaults the command line shows in its --help, importable without loading the maths."""

from charnn.analysis.dynamic_settings import DECAY as DYNAMIC_DECAY  # noqa: F401
from charnn.analysis.dynamic_settings import LR as DYNAMIC_LR  # noqa: F401
from charnn.analysis.dynamic_settings import SEGMENT_LEN  # noqa: F401
