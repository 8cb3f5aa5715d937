"""HTML building blocks of the curation report: escaping, tables, sections, the page shell and its inline CSS.

Everything that reaches the page from a run (captions, URLs, entry names, reasons, paths) is untrusted text and
goes through `esc`. The page loads nothing: a Content-Security-Policy allows only inline styles and data: images,
so even a missed escape could neither run a script nor fetch a URL.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from pipeline.report_plots import FUNNEL_COLOUR

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = f"""
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 0;
  background: #f6f7f9; }}
main {{ max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }}
h1 {{ font-size: 22px; margin: 8px 0 4px; }}
h2 {{ font-size: 17px; margin: 0 0 10px; }}
section {{ background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 14px 18px; margin: 14px 0; }}
nav a {{ margin-right: 10px; color: #264653; }}
table {{ border-collapse: collapse; margin: 6px 0 10px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #eceff3; text-align: left; vertical-align: top; }}
th {{ background: #f0f2f5; font-weight: 600; }}
td.n, th.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
code, .mono {{ font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }}
.missing {{ color: #6b7280; font-style: italic; }}
.warn {{ color: #9b2226; font-weight: 600; }}
.muted {{ color: #6b7280; font-size: 12px; }}
.status {{ padding: 1px 8px; border-radius: 10px; background: #e9f5f3; }}
.funnel {{ display: grid; grid-template-columns: 190px 1fr 320px; gap: 4px 12px; align-items: center; }}
.funnel .track {{ background: #eef0f3; height: 22px; border-radius: 3px; }}
.funnel .fbar {{ background: {FUNNEL_COLOUR}; height: 22px; border-radius: 3px; min-width: 2px; }}
.funnel .drops {{ font-size: 12px; color: #4b5563; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }}
.card {{ border: 1px solid #e3e6eb; border-radius: 4px; padding: 6px; font-size: 12px; overflow-wrap: anywhere; }}
.card img {{ display: block; width: 160px; height: 160px; object-fit: contain; background: #f0f2f5; }}
.pair {{ display: flex; gap: 8px; }}
.noimg {{ width: 160px; height: 160px; display: flex; align-items: center; justify-content: center; text-align: center;
  background: repeating-linear-gradient(45deg, #f3f4f6, #f3f4f6 8px, #e5e7eb 8px, #e5e7eb 16px); color: #6b7280; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 8px; }}
img.fig {{ max-width: 100%; }}
"""


def esc(value: object) -> str:
    """`value` as HTML text (quotes escaped too: safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: object) -> str:
    """Integers with thousands separators, floats to 4 significant digits, anything else escaped."""
    if isinstance(value, bool) or value is None:
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return esc(value)


def table(headers: list[str], rows: Iterable[list[object]], numeric: Iterable[int] = (), cls: str = "") -> str:
    """A table; cells are escaped (numbers formatted by `num`); columns in `numeric` are right-aligned."""
    numeric = set(numeric)
    head = "".join(
        f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{num(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(rows: list) -> str:
    """A two-column key/value table without a header row."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{num(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def figure(uri: str, alt: str) -> str:
    return f'<img class="fig" src="{esc(uri)}" alt="{esc(alt)}">'


def missing(why: str) -> str:
    """The one-line note of a section whose inputs the run does not have."""
    return f'<p class="missing">Not in this run: {esc(why)}</p>'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, nav: list[tuple[str, str]], body: str) -> str:
    """The whole document: no script, no external resource, CSP-locked."""
    links = "".join(f'<a href="#{esc(sid)}">{esc(name)}</a>' for sid, name in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n"
        f"<body><main><h1>{esc(title)}</h1><nav>{links}</nav>\n{body}\n</main></body></html>\n"
    )
