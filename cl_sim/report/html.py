"""report.html: the Markdown report as one self-contained page (plots embedded as base64 PNG),
to open in a browser or attach to an e-mail without its folder.

    write_html(Path("runs/task_order/report.md"))   # -> runs/task_order/report.html
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

from cl_sim.io import atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"""


def _embed(html: str, folder: Path) -> str:
    """Replace every <img src="x.png"> that exists in `folder` with its bytes as a data URI."""
    def inline(m: re.Match) -> str:
        path = folder / m.group(2)
        if not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'{m.group(1)}data:image/png;base64,{data}{m.group(3)}'

    return re.sub(r'(<img[^>]*src=")([^"]+\.png)(")', inline, html)


def write_html(report_md: Path) -> Path:
    """Write report.html beside `report_md` (atomically) and return its path."""
    import markdown

    report_md = Path(report_md)
    body = markdown.markdown(report_md.read_text(encoding="utf-8"), extensions=["tables"])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>cl_sim report</title>"
            f"<style>{STYLE}</style></head><body>{_embed(body, report_md.parent)}</body></html>")
    out = report_md.with_suffix(".html")
    atomic_write_text(out, page)
    return out
