"""Per-image metrics of attribution maps (see registry.py for the contract)."""
from .registry import (CATEGORIES, METRICS, MetricSpec, category_key, get_metric, ordered_categories, register_metric,
                       score)
from . import faithfulness, localisation  # noqa: F401  (register the entries)
from . import road  # noqa: F401
from . import sanity  # noqa: F401
from .library import score_maps
from .sign import DEFAULT_SIGN, SIGNS, apply_sign

__all__ = ["CATEGORIES", "DEFAULT_SIGN", "METRICS", "MetricSpec", "SIGNS", "apply_sign", "category_key", "get_metric",
           "ordered_categories", "register_metric", "score", "score_maps"]
