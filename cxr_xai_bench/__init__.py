"""cxr-xai-bench's components under one project namespace, so that installing the benchmark never
shadows another package's top-level name (Hugging Face's `datasets` above all):

    cxr_xai_bench.datasets    samples and masks from files (the Sample contract)
    cxr_xai_bench.models      classifiers taking (N,1,H,W) in [0,1] and returning logits
    cxr_xai_bench.explainers  attribution methods and baselines

The wheel installs the repository's `datasets/`, `models/` and `explainers/` folders inside this
package (pyproject's package-dir). In a source checkout used without installing, the folders sit
beside this one: the path below makes `cxr_xai_bench.datasets` find them there.
"""
from pathlib import Path

_here = Path(__file__).resolve().parent
if not (_here / "datasets").is_dir():  # a source checkout: the components are the repository's folders
    __path__.append(str(_here.parent))  # noqa: F821  (a package's __path__)
