"""What `clipforge build` checks before Ray starts: whose directory `output` is, what a recorded config changes, and
which download refusals the config makes foreseeable. Reads only; never writes, never resolves DNS.

A directory (or S3 prefix) is *recognisably a clipforge run* when its `config.yaml` loads as a `BuildConfig` and at
least one of `RUN_MARKERS` (manifest.json, work/, stats/) is there. Only such a directory may be resumed or cleared
by `--overwrite`; any other non-empty location is refused (docs/build.md, "Where a build may write").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import yaml

from curation.fetch_config import FetchConfig, FetchStatus
from curation.fetch_guard import Refusal, validate_url
from curation.netrange import parse_networks
from pipeline.build_config import BuildConfig, InputConfig
from pipeline.core.config import dotted_items, validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, filesystem, read_bytes
from pipeline.csv_rows import csv_parse_options
from pipeline.rundir import RUN_MARKERS, RunDir

URL_SAMPLE = 1000
LOCAL_NAMES = {"localhost": ["127.0.0.1", "::1"], "localhost.localdomain": ["127.0.0.1", "::1"]}


def recorded_config(run: RunDir) -> BuildConfig:
    """The BuildConfig in RUN/config.yaml (local or S3); a missing, unreadable or invalid one is a `ClipforgeError`."""
    where = run.path("config.yaml")
    try:
        data = yaml.safe_load(read_bytes(where, run.s3))
    except (OSError, yaml.YAMLError) as e:
        raise ClipforgeError(f"cannot read {where!r}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(data, dict):
        raise ClipforgeError(f"{where!r} does not hold a mapping of keys")
    return validate_config(BuildConfig, data, repr(where))


def why_not_a_run(run: RunDir) -> str | None:
    """None when `run` is recognisably a clipforge run directory, else what is missing (for the refusal)."""
    if not run.exists("config.yaml"):
        return "it has no config.yaml"
    try:
        recorded_config(run)
    except ClipforgeError as e:
        return f"its config.yaml is not a build config: {str(e)[:300]}"
    if not run.markers():
        return f"it has a config.yaml but none of {', '.join(RUN_MARKERS)}"
    return None


def guard_output(cfg: BuildConfig, run: RunDir, overwrite: bool) -> bool:
    """Refuse (`ClipforgeError`, exit 2) an output that is neither empty nor a clipforge run, `overwrite` or not;
    True when it holds a run (resume it, or clear it with `overwrite`), False when nothing is there."""
    if run.is_empty():
        return False
    where = f"output {cfg.output!r}"
    if run.is_file():
        raise ClipforgeError(f"{where} is a file; point output at a new or empty directory")
    why = why_not_a_run(run)
    if why is None:
        return True
    found = run.entries(6)
    holds = f" It holds {', '.join(found[:5])}{', …' if len(found) > 5 else ''}." if found else ""
    flag = " --overwrite clears only a clipforge run directory, so it was not applied." if overwrite else ""
    raise ClipforgeError(
        f"{where} is not empty and is not a clipforge run directory ({why}).{holds}{flag} Nothing was written or "
        "deleted: point output at a new or empty directory (or move those files away)."
    )


def config_differences(old: BuildConfig, new: BuildConfig, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs, as `key (OLD there, NEW now)`, sorted; lists compare
    whole. Keys in `ignore` (dotted) are skipped."""
    a, b = dotted_items(old.model_dump(mode="json")), dotted_items(new.model_dump(mode="json"))
    skip = set(ignore)
    keys = sorted(k for k in a.keys() | b.keys() if k not in skip and a.get(k) != b.get(k))
    return [f"{k} ({_short(a.get(k))} there, {_short(b.get(k))} now)" for k in keys]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample_urls(cfg: InputConfig, files: list[str], fmt: str, s3: S3Options | None, n: int = URL_SAMPLE) -> list[str]:
    """The first `n` URLs of the input (files in order), read on the driver without Ray; nulls skipped."""
    urls: list[str] = []
    for f in files:
        if len(urls) >= n:
            break
        fs, path = filesystem(f, s3)
        urls += [u for u in _first_urls(fs, path, fmt, cfg.url_col, n - len(urls)) if isinstance(u, str)]
    return urls[:n]


def _first_urls(fs, path: str, fmt: str, col: str, n: int) -> list:
    import json

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        batches = pq.ParquetFile(fs.open_input_file(path)).iter_batches(batch_size=n, columns=[col])
        return next(batches, pa.record_batch([pa.array([], pa.string())], names=[col]))[col].to_pylist()
    with fs.open_input_stream(path, compression="detect") as stream:
        if fmt in ("csv", "tsv"):
            reader = pacsv.open_csv(
                stream,
                parse_options=csv_parse_options("\t" if fmt == "tsv" else ",", []),  # a sample: bad rows skipped
                convert_options=pacsv.ConvertOptions(include_columns=[col], column_types={col: pa.string()}),
            )
            out: list = []
            for batch in reader:
                out += batch[col].to_pylist()
                if len(out) >= n:
                    break
            return out[:n]
        head = stream.read(8 << 20).decode("utf-8", errors="replace")
    rows = (json.loads(line) for line in head.splitlines()[:n] if line.strip().startswith("{"))
    return [row.get(col) for row in rows]


class _NotResolved(OSError):
    """A host name the foresight does not resolve (no DNS in a check)."""


def _no_dns(host: str, port: int) -> list[str]:
    if host.lower() in LOCAL_NAMES:
        return LOCAL_NAMES[host.lower()]
    raise _NotResolved(host)


def foresee_refusals(urls: list[str], fetch: FetchConfig) -> tuple[Counter, int]:
    """(refusals by `status: detail-reason`, URLs whose fate needs DNS) for URLs the safe fetcher would refuse
    before connecting, judged by the fetcher's own checks (`validate_url`) with IP-literal hosts and `localhost`
    only — no name is resolved."""
    allow, deny = parse_networks(fetch.allow_cidrs), parse_networks(fetch.deny_cidrs)
    refused: Counter = Counter()
    unknown = 0
    for url in urls:
        verdict = validate_url(url, fetch, allow, deny, _no_dns)
        if not isinstance(verdict, Refusal):
            continue
        if verdict.status == FetchStatus.dns_error and verdict.detail.startswith(_NotResolved.__name__):
            unknown += 1
            continue
        why = ""
        if verdict.status == FetchStatus.forbidden_address:
            why = verdict.detail.rsplit(": ", 1)[-1] if " -> " in verdict.detail else "blocked hostname"
        refused[f"{verdict.status.value}: {why}" if why else verdict.status.value] += 1
    return refused, unknown


def foresight_lines(urls: list[str], fetch: FetchConfig) -> tuple[str, str | None]:
    """(a summary line, a warning or None) for the dry run: the warning when every sampled URL would be refused."""
    refused, unknown = foresee_refusals(urls, fetch)
    n_refused = sum(refused.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in refused.most_common(4))
    line = (
        f"{len(urls)} URLs sampled: {n_refused} would be refused before connecting"
        + (f" ({reasons})" if reasons else "")
        + f", {unknown} need DNS (not resolved here)"
    )
    if not urls or n_refused < len(urls):
        return line, None
    hint = ""
    if any(r.startswith(FetchStatus.forbidden_address.value) for r in refused):
        hint = (
            "; their hosts are private, loopback or otherwise refused addresses, and download.fetch.allow_cidrs is "
            f"{fetch.allow_cidrs!r} (a local test web needs e.g. --set 'download.fetch.allow_cidrs=[127.0.0.0/8]')"
        )
    return line, f"every one of the {len(urls)} sampled URLs would be rejected by download{hint}"
