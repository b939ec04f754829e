"""Unified Concept Editing: the pure edit is ``edit.py``, the CLI ``python -m src.methods.uce`` is ``__main__.py``.

This file stays empty so that ``--help`` does not import torch (running a package's ``__main__`` imports its
``__init__`` first).
"""
