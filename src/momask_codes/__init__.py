"""Upstream's entry-point paths (``src/momask_codes/...`` of the paper's repository), as thin aliases of hmu's own.

MoMask itself is reimplemented in ``src/models/momask``; nothing here holds library code.
"""
