"""The report states every verdict, and states a failing finding as failing (data where H2 is false)."""

from pathlib import Path

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


def test_names_from_the_data_never_leave_the_output_folder(tmp_path):
    import os

    from .conftest import make

    crafted = make(families=("x/../../../escaped", "..", "a\\..\\b"), n_inputs=12, n_seeds=6, dim=16)
    out = tmp_path / "deep" / "er" / "out"
    findings = run_all(crafted, out, options={"bayes": False}, only=["similarity", "cosine_laws", "convergence"],
                       strict=True)
    written = [Path(root, f) for root, _, files in os.walk(tmp_path) for f in files]
    assert written and all(out in path.parents for path in written), written
    figures = sorted(str(p) for f in findings for p in f.figures)
    assert "figures/similarity_x_.._.._.._escaped.png" in figures and "figures/similarity_...png" in figures
    assert all((out / p).is_file() for p in figures)


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_file_stem_refuses_names_that_are_not_files(name):
    from sawdist.analyses._common import file_stem

    with pytest.raises(ValueError, match=rf"^'name' must make a file name inside the output folder, got '{name}'\.$"):
        file_stem(name)


def test_a_verdict_resting_on_an_unreliable_fit_is_unreliable_never_holds(tmp_path):
    from sawdist.analyses._common import Finding, apply_sampler_rule
    from sawdist.bayes import SamplerDiagnostics

    bad = SamplerDiagnostics(rhat_max=1.08, ess_bulk_min=47.0, divergences=3, chains=4, draws=300)
    good = SamplerDiagnostics(rhat_max=1.002, ess_bulk_min=900.0, divergences=0, chains=4, draws=300)
    for status in ("holds", "fails", "inconclusive"):
        f = Finding("convergence", "Convergence law", "beta > 0", status=status, reason="beta > 0")
        apply_sampler_rule(f, bad, "power-law fit")
        assert f.status == "unreliable (sampler)" and f.holds is None
        assert f.reason == ("the power-law fit breaks the sampler rule (max R-hat 1.080 > 1.01, min bulk ESS 47 < "
                            "400, 3 divergent transitions; the rule asks for R-hat <= 1.01, bulk ESS >= 400 and no "
                            "divergences), so its posterior decides nothing; fit again with more tuning and draws")
        assert f.numbers["sampler_reliable"] is False
    kept = Finding("convergence", "Convergence law", "beta > 0", status="holds", reason="beta > 0")
    apply_sampler_rule(kept, good, "power-law fit")
    assert kept.status == "holds" and kept.numbers["sampler_reliable"] is True
    md, page = write_report([f, kept], tmp_path)
    text = md.read_text()
    assert "| 1 | Convergence law | **UNRELIABLE (sampler)** |" in text and "## 1. Convergence law — UNRELIABLE" in text
    assert "| 2 | Convergence law | **HOLDS** |" in text
    assert "UNRELIABLE (sampler)</span></h2>" in page.read_text()


def test_four_chains_by_default():
    assert Options().chains == 4
