"""The shared evaluator: frozen features -> ridge probe (and, later, finetuning)."""
