"""Zero-shot, retrieval and linear-probe evaluation of open_clip checkpoints (embedding separate from scoring).

Public API: `evaluation.run.evaluate` / `evaluate_on_ray` / `zeroshot_quick` (training's periodic eval),
`evaluation.config.EvalConfig`, `evaluation.datasets.load_benchmark`, the pure numpy metrics in
`evaluation.zeroshot` / `evaluation.retrieval` / `evaluation.linear_probe`, and `evaluation.models`
(`register_model_configs`, `load_model`, `export_local_dir`). Importing this package imports nothing heavy.
"""
