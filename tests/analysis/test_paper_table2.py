"""The paper's Table 2 as typed: its pooled rows come out as printed; which stated kappas the counts allow.

Quotations are from Seah et al., Radiology 2019;290:514-522, Table 2 and its note (page 518;
reference/paper.txt of the project).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.agreement import cohen_kappa
from analysis.contingency import chi_square, fisher_exact
from analysis.paper_table2 import (STATED_INTER_KAPPA, STATED_INTRA_KAPPA, inter_kappa_compatibility,
                                   kappa_compatibility, load_paper_table2, reanalyse)

# Table 2, the two "Pooled result" rows, columns Cardiomegaly, Pleural Effusion, Airspace Opacity,
# No CHF features:
#   Correctly trained model ... " Pooled result 153/200 (76.5) 47/200 (23.5) 35/200 (17.5) 40/200 (20)"
#   Overfitted model ...        " Pooled result 64/200 (32) 16/200 (8) 12/200 (6) 127/200 (63.5)"
PRINTED_POOLED = {
    ("correct", "cardiomegaly"): "153/200 (76.5)",
    ("correct", "pleural_effusion"): "47/200 (23.5)",
    ("correct", "airspace_opacity"): "35/200 (17.5)",
    ("correct", "no_chf_features"): "40/200 (20)",
    ("overfitted", "cardiomegaly"): "64/200 (32)",
    ("overfitted", "pleural_effusion"): "16/200 (8)",
    ("overfitted", "airspace_opacity"): "12/200 (6)",
    ("overfitted", "no_chf_features"): "127/200 (63.5)",
}


@pytest.fixture(scope="module")
def counts():
    return load_paper_table2()


def test_typed_counts_shape(counts):
    assert len(counts) == 2 * 2 * 2 * 4
    assert (counts["n"] == 50).all()  # note: "50 from a correctly trained model and 50 from an overfitted model"
    # note: "For instance, reader A identified 35 GVRs demonstrating cardiomegaly as a feature from the
    # correctly trained model on their first read."
    row = counts[(counts["regime"] == "correct") & (counts["reader"] == "A") & (counts["round"] == 1)
                 & (counts["feature"] == "cardiomegaly")]
    assert row["count"].item() == 35


def test_pooled_rows_as_printed(counts):
    pooled = reanalyse(counts).pooled.set_index(["regime", "feature"])
    for key, printed in PRINTED_POOLED.items():
        assert pooled.loc[key, "display"] == printed
        n, rest = printed.split("/")
        assert pooled.loc[key, "count"] == int(n) and pooled.loc[key, "n"] == int(rest.split()[0])
        assert pooled.loc[key, "proportion"] * 100 == pytest.approx(float(rest.split("(")[1].rstrip(")")))


def test_results_text_numbers(counts):
    # Results: "a higher frequency of cardiomegaly (153 [76.5%] of 200 vs 64 [32%] of 200; P < .001) and
    # pleural effusion (47 [23.5%] of 200 vs 16 [8%] of 200; P = .003)"; "airspace opacity ... (35
    # [17.5%] of 200 vs 12 [6%] of 200; P = .38)"; "127 (63.5%) of 200 GVRs from the overfitted model
    # failed to highlight any features of CHF, compared with 40 (20%) of 200".
    t = reanalyse(counts).pooled_tests.set_index("feature")
    assert tuple(t.loc["cardiomegaly", ["count_correct", "count_overfitted"]]) == (153, 64)
    assert tuple(t.loc["pleural_effusion", ["count_correct", "count_overfitted"]]) == (47, 16)
    assert tuple(t.loc["airspace_opacity", ["count_correct", "count_overfitted"]]) == (35, 12)
    assert tuple(t.loc["no_chf_features", ["count_correct", "count_overfitted"]]) == (40, 127)
    assert t.loc["airspace_opacity", "stated_p"] == 0.38


def test_tests_are_analysis_contingency(counts):
    r = reanalyse(counts)
    row = r.per_reading[(r.per_reading["reader"] == "B") & (r.per_reading["round"] == 2)
                        & (r.per_reading["feature"] == "pleural_effusion")].iloc[0]
    table = [[19, 31], [5, 45]]  # reader B, second reading: 19/50 correct vs 5/50 overfitted
    assert row["fisher_p"] == fisher_exact(table).p_value
    assert row["chi2_p"] == chi_square(table).p_value
    pooled = r.pooled_tests.set_index("feature").loc["cardiomegaly"]
    assert pooled["fisher_p"] == fisher_exact([[153, 47], [64, 136]]).p_value
    assert pooled["chi2"] == chi_square([[153, 47], [64, 136]]).statistic
    # reader A never marked airspace opacity on the overfitted model's GVRs: an infinite odds ratio
    a = r.per_reading[(r.per_reading["reader"] == "A") & (r.per_reading["feature"] == "airspace_opacity")]
    assert np.isinf(a["odds_ratio"]).all()


def test_finding_naive_pooled_p_far_below_stated_for_airspace_opacity(counts):
    # The stated P = .38 (mixed model) cannot be checked without the assessments; the naive pooled
    # tests, which ignore that each GVR was read four times, give far smaller values.
    t = reanalyse(counts).pooled_tests.set_index("feature")
    assert t.loc["airspace_opacity", "fisher_p"] < 0.001 < 0.38


def test_compatibility_enumerates_every_joint_table(counts):
    c = kappa_compatibility(counts, "A", "pleural_effusion")
    # reader A, pleural effusion: correct 6/50 then 3/50; overfitted 3/50 then 1/50
    assert c.margins == ((6, 3, 50), (3, 1, 50))
    assert c.agreements == tuple(range(0, 3 + 1 + 1))
    brute = set()
    for x1 in range(0, 4):
        for x2 in range(0, 2):
            x = x1 + x2
            r1 = np.repeat([1, 1, 0, 0], [x, 9 - x, 4 - x, 100 - 13 + x])
            r2 = np.repeat([1, 0, 1, 0], [x, 9 - x, 4 - x, 100 - 13 + x])
            brute.add(round(cohen_kappa(r1, r2).kappa, 12))
    assert {round(k, 12) for k in c.kappas} == brute
    assert list(c.kappas) == sorted(c.kappas)
    assert (c.kappa_min, c.kappa_max) == (min(c.kappas), max(c.kappas))


# Note to Table 2: "The intraobserver k for reader A was 0.78 for cardiomegaly, 0.43 for pleural
# effusion, 0.26 for airspace opacity, and 0.76 for no CHF features. The intraobserver k for reader B
# was 0.75 for cardiomegaly, 0.79 for pleural effusion, 0.75 for airspace opacity, and 0.81 for no CHF
# features."
QUOTED_INTRA = {("A", "cardiomegaly"): 0.78, ("A", "pleural_effusion"): 0.43, ("A", "airspace_opacity"): 0.26,
                ("A", "no_chf_features"): 0.76, ("B", "cardiomegaly"): 0.75, ("B", "pleural_effusion"): 0.79,
                ("B", "airspace_opacity"): 0.75, ("B", "no_chf_features"): 0.81}


def test_stated_values_are_the_quoted_ones():
    assert STATED_INTRA_KAPPA == QUOTED_INTRA
    # "The interobserver k was 0.64 for cardiomegaly, 0.31 for pleural effusion, 0.20 for airspace
    # opacity, and 0.67 for no CHF features."
    assert STATED_INTER_KAPPA == {"cardiomegaly": 0.64, "pleural_effusion": 0.31, "airspace_opacity": 0.20,
                                  "no_chf_features": 0.67}


@pytest.mark.parametrize(("reader", "feature"), list(QUOTED_INTRA))
def test_every_stated_intraobserver_kappa_is_compatible(counts, reader, feature):
    c = kappa_compatibility(counts, reader, feature)
    assert c.stated_kappa == QUOTED_INTRA[(reader, feature)]
    assert c.kappa_min <= c.stated_kappa <= c.kappa_max
    assert c.compatible, (reader, feature, c.nearest_kappa)
    assert round(c.nearest_kappa, 2) == c.stated_kappa


def test_some_intraobserver_kappas_fix_the_agreement(counts):
    # only one feasible joint table gives the stated kappa for these
    for reader, feature in (("A", "pleural_effusion"), ("A", "airspace_opacity"), ("B", "airspace_opacity")):
        c = kappa_compatibility(counts, reader, feature)
        assert sum(round(k, 2) == c.stated_kappa for k in c.kappas) == 1


def test_interobserver_findings(counts):
    # Pooled over both readings (400 pairs) only pleural effusion's 0.31 is attainable; with the
    # first reading only (200 pairs), all but no CHF features; no scheme tried gives 0.67 for no CHF.
    both = {f: inter_kappa_compatibility(counts, f).compatible for f in STATED_INTER_KAPPA}
    first = {f: inter_kappa_compatibility(counts, f, rounds=(1,)).compatible for f in STATED_INTER_KAPPA}
    second = {f: inter_kappa_compatibility(counts, f, rounds=(2,)).compatible for f in STATED_INTER_KAPPA}
    assert both == {"cardiomegaly": False, "pleural_effusion": True, "airspace_opacity": False,
                    "no_chf_features": False}
    assert first == {"cardiomegaly": True, "pleural_effusion": True, "airspace_opacity": True,
                     "no_chf_features": False}
    assert not any(second.values())
    assert not (both["no_chf_features"] or first["no_chf_features"] or second["no_chf_features"])


def test_stated_override_and_errors(counts):
    assert kappa_compatibility(counts, "A", "cardiomegaly", stated=0.95).compatible is False
    with pytest.raises(ValueError, match="no row for"):
        kappa_compatibility(counts, "C", "cardiomegaly")
    with pytest.raises(ValueError, match="lacks column"):
        reanalyse(counts.drop(columns="n"))
    with pytest.raises(ValueError, match="between 0 and n"):
        reanalyse(counts.assign(count=counts["count"] + 60))
    frame = kappa_compatibility(counts, "B", "cardiomegaly").to_frame()
    assert list(frame.columns[:3]) == ["kind", "reader", "feature"] and len(frame) == 1
