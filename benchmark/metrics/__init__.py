"""Per-image metrics of attribution maps (see registry.py for the contract)."""
from .registry import CATEGORIES, METRICS, MetricSpec, get_metric, register_metric, score
from . import faithfulness, localisation  # noqa: F401  (register the entries)
from . import road  # noqa: F401
from . import sanity  # noqa: F401
from .library import score_maps

__all__ = ["CATEGORIES", "METRICS", "MetricSpec", "get_metric", "register_metric", "score", "score_maps"]
