"""The report's figure workers (benchmark/report/figure_pool.py): results, errors and what a worker sees."""
import os

import pytest

from benchmark.metrics import get_metric, register_metric
from benchmark.metrics.registry import METRICS
from benchmark.report.figure_pool import FigurePool, auto_workers


def _category(name: str) -> tuple[str, int]:
    return get_metric(name).category, os.getpid()


def _fails(text: str) -> None:
    raise ValueError(text)


def test_workers_see_what_this_process_registered_and_run_elsewhere(monkeypatch):
    """A metric registered at run time (as a plug-in is) resolves in the workers: they are forked."""
    monkeypatch.setattr("benchmark.metrics.registry.METRICS", dict(METRICS))  # the built-ins again afterwards

    @register_metric("pool_test_metric", "localisation", higher_is_better=True)
    def pool_test_metric(model, images, targets, maps, masks, has_mask, **_):
        return maps.sum((1, 2))

    with FigurePool(2) as pool:
        results = [pool.submit(_category, "pool_test_metric") for _ in range(4)]
        answers = [r.result() for r in results]
    assert {c for c, _ in answers} == {"localisation"}
    assert os.getpid() not in {pid for _, pid in answers}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_figure_raises_its_own_error(workers):
    with pytest.raises(ValueError, match="panel 3 has no data"):
        with FigurePool(workers) as pool:
            pool.submit(_fails, "panel 3 has no data").result()


def test_one_worker_draws_in_this_process_and_auto_is_bounded():
    with FigurePool(1) as pool:
        assert pool.submit(_category, "relevance_mass").result() == ("localisation", os.getpid())
    assert 1 <= auto_workers(0) <= 4 and auto_workers(3) == 3
