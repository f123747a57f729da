"""The shared evaluator: frozen features -> ridge probe (`runner.RidgeEvaluator`), or a finetuned regression head
(`finetune.FinetuneEvaluator`); feature cache, saved regressors and result files. See docs/evaluator.md."""
