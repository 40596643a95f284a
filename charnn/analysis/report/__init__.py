"""`charnn report`: a run read into one dataclass (reading.py), and the page as a pure function of it (page.py)."""
