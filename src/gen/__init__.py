"""Text-to-motion generation: the generators (:mod:`src.gen.generate`) and ``python -m src.gen``."""
