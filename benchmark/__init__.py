# Deliberately empty: lime 0.2.0.1 installs a stray top-level package also named `benchmark`
# whose empty __init__.py may overwrite or shadow this one; the suite must work either way.
