"""Pure numpy metrics (models floor): arrays in, numbers out; the trainers and the evaluation both import them.

t2m.py: FID, diversity, R-precision, MM-Dist/MM-Safe, intervals and summaries; retrieval.py: TMR's R@k and median
rank; classification.py: ROC AUC.
"""
