# Deliberately no code: lime 0.2.0.1 installs a stray top-level package also named `benchmark`
# whose empty __init__.py may overwrite or shadow this one; the suite must work either way.
# What lives here: cli (the command line), run/ (config, runner and its stages, executors), store/ (the run
# folder's formats and code versions, shared by run/ and report/),
# metrics/ (per-image scores), report/ (statistics, tables, figures, the report), speed/ (timing tools).
