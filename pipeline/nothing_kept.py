"""Why a build kept nothing: the stage that rejected the last live rows, its commonest reason and, for reasons a
config key explains, the fix. Reads only the funnel and rejects/ (durable artifacts); decides nothing.
"""

from __future__ import annotations

import pyarrow.compute as pc

from curation.fetch_config import FetchStatus
from curation.images import ImageStatus
from curation.langid import LangReject
from curation.langmap import LangMapReject
from curation.text import TextReject
from pipeline.rundir import RunDir
from pipeline.stages.match import MatchReject
from pipeline.stats import read_table

_FILTERS = "the captions fail text.filters; loosen them (min_chars, min_words, max_chars, max_words)"
HINTS: dict[str, str] = {
    FetchStatus.forbidden_address: (
        "to crawl a local or private-network server set download.fetch.allow_cidrs "
        "(e.g. --set 'download.fetch.allow_cidrs=[127.0.0.0/8]')"
    ),
    FetchStatus.connection_error: "is the web server running and reachable from the Ray workers?",
    FetchStatus.dns_error: "do the URLs' hostnames resolve from the Ray workers?",
    FetchStatus.timeout: "the server answered too slowly: raise download.fetch.deadline_s",
    FetchStatus.opt_out: "the server opts out of AI use (X-Robots-Tag); its images may not be used",
    MatchReject.NO_MATCH: "no caption contains an entry of match.metadata; check that the metadata fits the captions",
    LangMapReject.NO_METADATA_LANGUAGE: (
        "no caption is in a language of the metadata directory: add the captions' languages "
        "(clipforge metadata build --languages)"
    ),
    LangReject.LANG: "no caption is in a language of text.langid.keep; add the captions' languages (null keeps all)",
    LangReject.LANG_SCORE: "lower text.langid.threshold",
    TextReject.EMPTY: "the captions are empty: check input.caption_col",
    TextReject.TOO_SHORT: _FILTERS,
    TextReject.TOO_LONG: _FILTERS,
    TextReject.TOO_FEW_WORDS: _FILTERS,
    TextReject.TOO_MANY_WORDS: _FILTERS,
    ImageStatus.too_small: "lower image.min_image_size",
    ImageStatus.bad_aspect: "raise image.max_aspect_ratio",
}
"""reason → how to fix it, for reasons that usually mean a config (or a server) is wrong rather than bad data."""


def why_nothing_kept(run: RunDir, stats: dict) -> str | None:
    """One sentence for a build whose funnel (`pipeline.stats.funnel`) kept no row: which stage rejected the last
    live rows, as what (with the commonest `reject_detail` of that reason) and, for a reason in `HINTS`, the fix.
    None when something was kept or nothing was input."""
    if stats["kept"] or not stats["input_rows"]:
        return None
    last = next(s for s in stats["by_stage"] if s["remaining"] == 0)
    stage, reached = last["stage"], last["rejected"]
    reasons = [r for r in stats["by_reason"] if r["stage"] == stage]
    top = reasons[0]
    rejects = read_table(run, "rejects", ["stage", "reason", "detail"])
    mine = (pc.field("stage") == stage) & (pc.field("reason") == top["reason"]) & pc.field("detail").is_valid()
    counts = rejects.filter(mine)["detail"].value_counts().to_pylist()  # Arrow, not per-row Python: rejects is big
    example = f" (e.g. {max(counts, key=lambda c: c['counts'])['values'][:100]})" if counts else ""
    if top["rows"] == reached:
        what = f"all {reached:,} rows that reached {stage} were rejected as {top['reason']}{example}"
    else:
        what = (
            f"{stage} rejected the last {reached:,} rows, most ({top['rows']:,}) as {top['reason']}{example} "
            f"and the rest for {len(reasons) - 1} other reason(s)"
        )
    hint = HINTS.get(top["reason"])
    return f"nothing kept: {what}" + (f"; {hint}" if hint else "")
