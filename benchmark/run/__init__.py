"""Running a benchmark: the config (config, presets), the runner as a sequence of stage modules
(train, tune, shards for explain and score, gather, repeat, report_stage) sharing a RunContext
(context), the shard jobs and what a worker process keeps loaded (jobs), the content-keyed store
(store), the executors (executor: in-process; ray_executor: Ray), and the data splits with their
preprocessing cache (data, data_cache)."""
