import numpy as np
import pandas as pd

from benchmark.report import leaderboard_latex, leaderboard_markdown
from benchmark.stats import paired_tests, summarise


def _scores(gap):
    rng = np.random.default_rng(0)
    base = rng.random(40)
    rows = []
    for name, values in (("good", base + gap), ("plain", base), ("noise", rng.random(40))):
        rows += [dict(dataset="d", split="s", model="m", explainer=name, metric="relevance_mass", image_id=str(i), value=v)
                 for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_dagger_marks_a_significant_lead_only():
    for gap, marked in ((0.05, True), (0.0, False)):
        scores = _scores(gap)
        summary, tests = summarise(scores, 100), paired_tests(scores)
        md = leaderboard_markdown(summary, tests=tests)
        assert ("†" in md.split("\n", 1)[1]) == marked
        tex = leaderboard_latex(summary, tests)
        assert ("\\textbf" in tex) and (("$^\\dagger$" in tex.split("\\toprule")[1]) == marked)
        assert "relevance\\_mass" in tex and tex.count("\\begin{tabular}") == 1
