"""Speed tools, apart from the runs they measure: floor (each model's measured throughput, the
passes a run plans per stage, and the floor table a run prints and stores), scaling (time and peak
memory of whole runs against test images and image size), metric_speed (`python -m benchmark perf`: our
metrics against Quantus on the same inputs) and explainer_speed (every explainer side by side)."""
