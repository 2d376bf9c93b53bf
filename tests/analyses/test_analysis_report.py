"""The report states every verdict, and states a failing finding as failing (data where H2 is false)."""

import pytest

from sawdist.analyses import run_all
from sawdist.analyses.context import Options
from sawdist.analyses.report import write_report


def test_report_states_a_failing_h2_as_failing(separate, tmp_path):
    findings = run_all(separate, tmp_path, options=Options(bayes=False), strict=True)
    by_key = {f.key: f for f in findings}
    assert by_key["shared_mean"].status == "fails"
    # Without a shared mean, models of different capacities do not agree at all (rho(k1, k2) = 0), so
    # rho(k_max, k_min) < rho(k_min, k_min): H1 fails too; the within-capacity agreement still rises.
    assert by_key["similarity"].status == "fails"
    assert by_key["cosine_laws"].status == "holds"
    assert by_key["transfer"].status == "not tested"
    md, page = write_report(findings, tmp_path, timings={"analysis": 1.0})
    text = md.read_text()
    assert "Capacities share the mean direction (H2) — FAILS" in text
    assert "| 3 | Capacities share the mean direction (H2) | **FAILS** |" in text
    assert "| 2 | Cosine laws concentrate with capacity; Saw shapes | **HOLDS** |" in text
    html = page.read_text()
    assert "FAILS</span></h2>" in html and "HOLDS</span>" in html
    for f in findings:
        for path in f.figures + f.tables:
            assert (tmp_path / path).is_file()
            assert str(path) in text


def test_run_all_reports_a_broken_analysis_as_not_tested(shared, tmp_path, monkeypatch):
    from sawdist.analyses import similarity

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(similarity, "analyze", broken)
    findings = run_all(shared, tmp_path, options={"bayes": False}, only=["similarity", "ensembles"])
    assert findings[0].status == "not tested" and "RuntimeError: boom" in findings[0].reason
    assert findings[1].status == "holds"
    with pytest.raises(RuntimeError, match="boom"):
        run_all(shared, tmp_path, options={"bayes": False}, only=["similarity"], strict=True)


def test_run_all_rejects_an_unknown_analysis(shared, tmp_path):
    with pytest.raises(ValueError, match="'only' must name analyses among similarity, .*, got 'nope'."):
        run_all(shared, tmp_path, only=["nope"])


def test_options_reject_an_unknown_option():
    with pytest.raises(ValueError, match="'analyses' option 'drawz' is unknown; the options are .*draws"):
        Options.from_dict({"drawz": 10})
