"""One-off preparation: fetching the released checkpoints, evaluator and word vectors."""
