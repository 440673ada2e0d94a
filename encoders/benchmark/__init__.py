"""The retrieval benchmark's internals: metrics (retrieval.py), plots (plots.py), tables (tables.py).

The entry point stays `encoders/evaluate.py`."""
