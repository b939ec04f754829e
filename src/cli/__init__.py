"""The top floor: commands that compose several layers (the split's TMR refinement, NCS over TMR, the evaluation
wrapper with qualitatives, the attack alias). Nothing in src/ imports this package; the old ``python -m`` names
(``src.data.split``, ``src.eval.ncs_compute``, ...) are thin aliases of these modules."""
