"""The report of a run: ``report.md`` and ``report.html`` (self-contained but for the PNG figures beside it).

After the summary of verdicts, the model quality: every model's test accuracy and valid fraction (per family and
capacity, the full table per seed in ``tables/model_quality.csv``), the exclusion rule of
:mod:`sawdist.analyses.quality` and the models it excluded, with the reason. For every finding: the claim, the
verdict (holds / fails / inconclusive / not tested / unreliable (sampler)) with its reason, what was measured with
95 % intervals, and links to its figures and tables. Then a table of where the time went.
"""

from __future__ import annotations

import datetime
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from ._common import Finding
    from .quality import Screening

__all__ = ["write_report"]

_BADGE = {"holds": "HOLDS", "fails": "FAILS", "inconclusive": "INCONCLUSIVE", "not tested": "NOT TESTED",
          "unreliable (sampler)": "UNRELIABLE (sampler)"}
_COLOR = {"holds": "#1a7f37", "fails": "#cf222e", "inconclusive": "#9a6700", "not tested": "#6e7781",
          "unreliable (sampler)": "#8250df"}
_RULES = ("a claim *holds* when its whole 95 % interval lies on the claimed side, *fails* when the whole interval "
          "lies on the other side, and is *inconclusive* otherwise; it is *unreliable (sampler)* when the Bayesian "
          "fit its verdict rests on breaks the sampler rule (R-hat, bulk ESS or divergences: see the finding), "
          "whatever its interval says. H2 (the shared mean) joins two tests by one rule: it holds when every "
          "alignment interval lies above the threshold and leave-one-input-out does not prefer separate means, fails "
          "when an alignment interval lies below, and is inconclusive otherwise (unreliable (sampler) when it would "
          "hold but a fit of the comparison breaks the sampler rule). Intervals of cosines (similarity, alignment, "
          "ensemble cosines) are computed on the Fisher-z scale and lie in [-1, 1].")


def _quality_section(screening):
    """(rule, excluded lines, header, rows, table paths) of the model-quality section, or None without screening."""
    if screening is None:
        return None
    from .quality import RULE, summary_rows

    header = ("family", "capacity", "models", "excluded", "test accuracy (min / median / max)",
              "valid fraction (min / median / max)")
    rows = [(r["family"], f"{r['capacity']:g}", str(r["models"]), str(r["excluded"]), r["accuracy"],
             r["valid_fraction"]) for r in summary_rows(screening.table)]
    tables = [Path("tables") / "model_quality.csv"]
    if screening.pool_table is not None:
        tables.append(Path("tables") / "model_pool_quality.csv")
    return RULE, screening.excluded(), header, rows, tables


def _summary_rows(findings):
    return [(i + 1, f.title, _BADGE.get(f.status, f.status.upper()), f.reason) for i, f in enumerate(findings)]


def markdown(findings: Sequence[Finding], *, title: str = "sawdist report", meta: Mapping[str, object] | None = None,
             timings: Mapping[str, float] | None = None, screening: Screening | None = None) -> str:
    lines = [f"# {title}", ""]
    for key, value in (meta or {}).items():
        lines.append(f"- **{key}**: {value}")
    if meta:
        lines.append("")
    lines += ["## Summary", "", "| # | finding | verdict | because |", "|---|---|---|---|"]
    for i, t, badge, reason in _summary_rows(findings):
        lines.append(f"| {i} | {t} | **{badge}** | {reason} |")
    lines += ["", f"Verdicts: {_RULES}", ""]
    quality = _quality_section(screening)
    if quality is not None:
        rule, excluded, header, rows, tables = quality
        lines += ["## Model quality", "", f"**Exclusion rule.** {rule}", ""]
        if excluded:
            lines += [f"**Excluded ({len(excluded)}).**", ""] + [f"- {line}" for line in excluded] + [""]
        else:
            lines += ["**Excluded.** None: every model passed.", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += ["", "Per model (seed): " + ", ".join(f"[{t.name}]({t.as_posix()})" for t in tables), ""]
    for i, f in enumerate(findings):
        lines += [f"## {i + 1}. {f.title} — {_BADGE.get(f.status, f.status.upper())}", "", f"**Claim.** {f.claim}",
                  "", f"**Verdict.** {_BADGE.get(f.status, f.status)}: {f.reason}.", ""]
        if f.measured:
            lines += ["**Measured.**", ""] + [f"- {m}" for m in f.measured] + [""]
        for fig in f.figures:
            lines += [f"![{f.title}]({Path(fig).as_posix()})", ""]
        if f.tables:
            lines += ["Tables: " + ", ".join(f"[{Path(t).name}]({Path(t).as_posix()})" for t in f.tables), ""]
    if timings:
        total = sum(timings.values())
        lines += ["## Where the time went", "", "| stage | seconds | share |", "|---|---:|---:|"]
        for name, sec in timings.items():
            lines.append(f"| {name} | {sec:.1f} | {100 * sec / total:.0f} % |")
        lines += [f"| **total** | **{total:.1f}** | |", ""]
    return "\n".join(lines)


def _html(findings, *, title, meta, timings, screening=None) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
           ("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
           "line-height:1.45}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
           "vertical-align:top}img{max-width:100%}.badge{color:#fff;padding:.1em .5em;border-radius:.3em;"
           "font-weight:600}</style>"), "</head><body>", f"<h1>{e(title)}</h1>"]
    if meta:
        out.append("<ul>" + "".join(f"<li><b>{e(str(k))}</b>: {e(str(v))}</li>" for k, v in meta.items()) + "</ul>")
    out.append("<h2>Summary</h2><table><tr><th>#</th><th>finding</th><th>verdict</th><th>because</th></tr>")
    for (i, t, badge, reason), f in zip(_summary_rows(findings), findings):
        out.append(f"<tr><td>{i}</td><td><a href='#f{i}'>{e(t)}</a></td><td><span class='badge' "
                   f"style='background:{_COLOR.get(f.status, '#333')}'>{badge}</span></td><td>{e(reason)}</td></tr>")
    rules = e(_RULES)
    for word in ("holds", "fails", "inconclusive", "unreliable (sampler)"):
        rules = rules.replace(f"*{word}*", f"<i>{word}</i>")
    out.append(f"</table><p>Verdicts: {rules}</p>")
    quality = _quality_section(screening)
    if quality is not None:
        rule, excluded, header, rows, tables = quality
        out.append(f"<h2 id='quality'>Model quality</h2><p><b>Exclusion rule.</b> {e(rule)}</p>")
        if excluded:
            out.append(f"<p><b>Excluded ({len(excluded)}).</b></p><ul>"
                       + "".join(f"<li>{e(line)}</li>" for line in excluded) + "</ul>")
        else:
            out.append("<p><b>Excluded.</b> None: every model passed.</p>")
        out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
                   + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                   + "</table>")
        out.append("<p>Per model (seed): " + ", ".join(f"<a href='{e(t.as_posix())}'>{e(t.name)}</a>"
                                                       for t in tables) + "</p>")
    for i, f in enumerate(findings):
        badge = _BADGE.get(f.status, f.status.upper())
        out.append(f"<h2 id='f{i + 1}'>{i + 1}. {e(f.title)} <span class='badge' "
                   f"style='background:{_COLOR.get(f.status, '#333')}'>{badge}</span></h2>")
        out.append(f"<p><b>Claim.</b> {e(f.claim)}</p><p><b>Verdict.</b> {badge}: {e(f.reason)}.</p>")
        if f.measured:
            out.append("<p><b>Measured.</b></p><ul>" + "".join(f"<li>{e(m)}</li>" for m in f.measured) + "</ul>")
        for fig in f.figures:
            out.append(f"<p><img src='{e(Path(fig).as_posix())}' alt='{e(f.title)}'></p>")
        if f.tables:
            out.append("<p>Tables: " + ", ".join(f"<a href='{e(Path(t).as_posix())}'>{e(Path(t).name)}</a>"
                                                 for t in f.tables) + "</p>")
    if timings:
        total = sum(timings.values())
        out.append("<h2>Where the time went</h2><table><tr><th>stage</th><th>seconds</th><th>share</th></tr>")
        for name, sec in timings.items():
            out.append(f"<tr><td>{e(name)}</td><td>{sec:.1f}</td><td>{100 * sec / total:.0f} %</td></tr>")
        out.append(f"<tr><td><b>total</b></td><td><b>{total:.1f}</b></td><td></td></tr></table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(findings: Sequence[Finding], out_dir: str | os.PathLike[str], *, title: str = "sawdist report",
                 meta: Mapping[str, object] | None = None, timings: Mapping[str, float] | None = None,
                 screening: Screening | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

    ``screening`` (:func:`sawdist.analyses.quality.screen` of the dataset the findings were measured on) adds the
    model-quality section: accuracy and valid fraction per family and capacity, the exclusion rule and the excluded
    models with the reason.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    meta.setdefault("written", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    md = out_dir / "report.md"
    md.write_text(markdown(findings, title=title, meta=meta, timings=timings, screening=screening), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(_html(findings, title=title, meta=meta, timings=timings, screening=screening), encoding="utf-8")
    return md, page
