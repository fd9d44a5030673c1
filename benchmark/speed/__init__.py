"""Speed tools, apart from the runs they measure: metric_speed (`python -m benchmark perf`: our
metrics against Quantus on the same inputs) and explainer_speed (every explainer side by side)."""
