"""Running a benchmark: the config (config, config_merge, presets), the runner as a sequence of
stage modules (train, with adopt for a seeds run in a single-seed run's folder, tune, shards for explain and score, gather, repeat, randomised_maps and
perturbed_maps over side_maps, report_stage) sharing a RunContext (context), the shard jobs and what
a worker process keeps loaded (jobs), test-only kill points (kill_hooks) (the content-keyed store is
benchmark.store, shared with reporting), the executors (executor: in-process; ray_executor: Ray), and the data splits with their
preprocessing cache (data, data_cache); the dataset context explainers need (missing_context) and
the images each one lacked it for, recorded for the report (context_gaps)."""
