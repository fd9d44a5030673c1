"""Issue 29, item 5: parity only through an equivalence test (TOST with a stated margin), never from a
difference that is not significant; "not shown (n = ...)" where the data cannot tell; the report
states the Holm families."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report.findings import comparisons, findings, findings_markdown, findings_note
from benchmark.report.stats import paired_tests, summarise, tost

PARITY_WORDS = ("same as", "tied", "does not beat", "no difference", "as good as", "indistinguishable")


def _long(values: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{i:02d}", value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


def _by_hand(a: np.ndarray, b: np.ndarray, m: float) -> float:
    """TOST from scipy's paired t-test on data shifted by the margin (the two one-sided tests)."""
    low = sps.ttest_rel(a + m, b, alternative="greater").pvalue   # H0: mean(a - b) <= -m
    high = sps.ttest_rel(a - m, b, alternative="less").pvalue     # H0: mean(a - b) >= +m
    return max(float(low), float(high))


@pytest.mark.parametrize("shift, sd, n, margin", [(0.0, 0.02, 30, 0.05), (0.03, 0.05, 25, 0.05), (0.0, 0.3, 12, 0.05),
                                                  (-0.04, 0.01, 8, 0.05), (0.2, 0.1, 40, 0.1)])
def test_tost_equals_two_shifted_one_sided_paired_t_tests(shift, sd, n, margin):
    """Deliberate bug caught: a TOST that takes the smaller of the two one-sided p's (or a two-sided
    p), which claims equivalence when only one side is rejected."""
    rng = np.random.default_rng(int(100 * sd) + n)
    b = rng.random(n)
    a = b + shift + sd * rng.standard_normal(n)
    assert tost(a, b, margin) == pytest.approx(_by_hand(a, b, margin), rel=1e-9, abs=1e-12)


def test_tost_edge_cases():
    a = np.arange(10.0)
    assert np.isnan(tost(a, a + 0.25, 0.0)) and np.isnan(tost(a[:1], a[:1], 0.5))
    assert tost(a, a + 0.25, 0.5) == 0.0 and tost(a, a + 1.0, 0.5) == 1.0  # no spread: inside or outside


def _cases() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 30
    base = rng.random(n)
    return _long({
        # parity: gradcam and random differ by noise of sd 0.01 around 0, far inside ±0.05
        ("gradcam", "relevance_mass"): base + 0.01 * rng.standard_normal(n), ("random", "relevance_mass"): base,
        # wide: lrp - random has mean ~0 but sd 0.4 on 12 images: not significant and NOT equivalent
        ("lrp", "relevance_mass"): np.r_[base[:12] + 0.4 * rng.standard_normal(12), base[12:] + 0.01],
    })


def test_parity_only_where_tost_rejects_and_never_from_a_non_significant_difference():
    """Two constructed pairs, both non-significant by Wilcoxon: gradcam - random (sd 0.01) is
    equivalent within ±0.05 by TOST; lrp - random has a wide CI (sd 0.4 on 12 images) and is not.
    Deliberate bug caught: calling every non-significant pair equivalent (or "tied"), which would call
    lrp equivalent to random on a CI of about ±0.25."""
    scores = _cases()
    summary, tests = summarise(scores, 200), paired_tests(scores, 200, equivalence_margin=0.05)
    comp = comparisons(tests).set_index(["explainer", "baseline"])
    g, lrp = comp.loc[("gradcam", "random")], comp.loc[("lrp", "random")]
    assert not g.beats and not lrp.beats and g.p_holm > 0.05 and lrp.p_holm > 0.05
    assert g.equivalent and g.p_tost_holm < 0.05
    assert not lrp.equivalent and lrp.p_tost_holm > 0.05
    assert lrp.diff_ci_high - lrp.diff_ci_low > 0.1  # the data cannot tell: a wide interval
    _, overview = findings(summary, tests)
    rows = overview.set_index("explainer")
    assert rows.loc["gradcam", "not_random"].startswith("relevance_mass (equivalent to random within ±0.05 (Δ ")
    assert rows.loc["lrp", "not_random"].startswith("relevance_mass (not shown vs random Δ ")
    assert "n = 30" in rows.loc["lrp", "not_random"] and "equivalent" not in rows.loc["lrp", "not_random"]
    md = findings_markdown(overview) + findings_note()
    for word in PARITY_WORDS:
        assert word not in md.lower(), word
    # margin 0: no parity claim at all, the equivalent pair is "not shown" like any other
    off = findings(summary, paired_tests(scores, 200, equivalence_margin=0.0))[1].set_index("explainer")
    assert off.loc["gradcam", "not_random"].startswith("relevance_mass (not shown vs random Δ ")


def test_tost_is_holm_corrected_within_the_pair_s_family():
    """Adding unrelated methods moves no method-vs-random equivalence p (the family is one method
    against each baseline); the methods' own pairs share one family."""
    scores = _cases()
    before = paired_tests(scores, 100).set_index(["a", "b"])
    rng = np.random.default_rng(1)
    more = pd.concat([scores, _long({(f"m{k}", "relevance_mass"): rng.random(30) for k in range(5)})])
    after = paired_tests(more, 100).set_index(["a", "b"])
    assert after.loc[("gradcam", "random"), "p_tost_holm"] == before.loc[("gradcam", "random"), "p_tost_holm"]
    methods = after[after.family == "methods"]
    assert len(methods) == 21 and (methods.p_tost_holm >= methods.p_tost - 1e-15).all()


def test_the_report_states_the_families_and_the_equivalence_rule():
    from benchmark.report.report_sections import _paired_summary
    tests = paired_tests(_cases(), 100, equivalence_margin=0.05)
    text = _paired_summary(tests)
    assert "Holm families" in text and "\"methods\"" in text and "\"baselines:<method>\"" in text
    assert "equivalent within ±0.05 (TOST" in text and "not shown" in text
    note = findings_note()
    assert "equivalent to b within ±m" in note and "report.equivalence_margin" in note
    assert "{" not in note  # every placeholder filled (the priors' list was printed as a literal brace)
