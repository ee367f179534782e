"""Small HTML builders for a self-contained report: no external file, script or font.

Images are embedded as base64 ``data:`` URIs, tables are plain ``<table>`` elements, equations
are rendered to PNG by matplotlib's mathtext (a subset of LaTeX) with the LaTeX source kept as
the image's ``alt`` text.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable

import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1em 2em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #0072B2; padding-bottom: 0.2em;
       margin-top: 2em; } h3 { margin-top: 1.5em; }
nav ul { columns: 2; } code, pre { background: #f4f4f4; padding: 0 0.2em; }
pre { padding: 0.6em; overflow-x: auto; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; height: auto;
       border: 1px solid #ddd; }
figcaption { font-size: 0.92em; color: #333; margin-top: 0.4em; max-width: 75em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #eef3f8; } td.text, th.text { text-align: left; }
.problems { border: 3px solid #C00000; background: #fff0f0; padding: 0.6em 1.2em;
       margin: 1em 0; } .problems h2 { color: #C00000; border: none; margin-top: 0.2em; }
.warnings { border: 2px solid #E69F00; background: #fff8e8; padding: 0.6em 1.2em; margin: 1em 0; }
.ok { border: 2px solid #009E73; background: #effaf5; padding: 0.4em 1.2em; margin: 1em 0; }
.fail { color: #C00000; font-weight: bold; }
img.equation { display: block; margin: 0.4em 0 0.4em 1.5em; border: none; }
img.inline-math { vertical-align: middle; border: none; }
div.wide { overflow-x: auto; max-width: 100%; }
details { margin: 0.4em 0 1em 0; } summary { cursor: pointer; color: #0072B2; }
"""


def esc(text: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """An anchor id made of letters, digits and dashes."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "section"


def png_uri(data: bytes) -> str:
    """A ``data:`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image(data: bytes, alt: str, css_class: str = "") -> str:
    """An ``<img>`` element with the PNG embedded."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<img{cls} src="{png_uri(data)}" alt="{esc(alt)}">'


def figure(data: bytes, alt: str, caption: str, anchor: str = "") -> str:
    """A ``<figure>`` with an embedded PNG and its caption (``caption`` is HTML)."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<figure{ident}>{image(data, alt)}<figcaption>{caption}</figcaption></figure>"


def equation(latex: str, dpi: int = 150, inline: bool = False) -> str:
    """An equation rendered to an embedded PNG by matplotlib's mathtext (displayed, or inline
    in a sentence). Falls back on the LaTeX source in ``<code>`` when mathtext cannot parse it.
    """
    from matplotlib import mathtext

    # mathtext wants braces after \mathcal and has no \text: use \mathrm with hard spaces
    tex = re.sub(r"\\mathcal\s+(\w)", r"\\mathcal{\1}", latex)
    tex = re.sub(r"\\text\{([^}]*)\}", lambda m: r"\mathrm{" + m[1].replace(" ", r"\ ") + "}", tex)
    tex = re.sub(r"\\[Bb]ig[lr]?\s*([()\[\]|])", r"\1", tex)  # no \big sizes in mathtext
    buffer = io.BytesIO()
    try:
        mathtext.math_to_image(f"${tex}$", buffer, dpi=dpi, format="png")
    except ValueError:
        return f"<code>{esc(latex)}</code>" if inline else f"<p><code>{esc(latex)}</code></p>"
    return image(buffer.getvalue(), latex, "inline-math" if inline else "equation")


def table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as an HTML table; numbers with ``digits`` significant digits."""

    def cell(value: object) -> tuple[str, bool]:
        if isinstance(value, bool):
            return ("yes" if value else "no"), False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if pd.isna(value):
                return "", True
            return f"{value:.{digits}g}", True
        return ("" if value is None or (isinstance(value, float) and pd.isna(value))
                else str(value)), False

    head = "".join(f'<th class="text">{esc(c)}</th>' for c in df.columns)
    rows = []
    for record in df.itertuples(index=False):
        cells = []
        for value in record:
            text, numeric = cell(value.item() if hasattr(value, "item") else value)
            cls = "" if numeric else ' class="text"'
            cells.append(f"<td{cls}>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "".join(rows)
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def items(entries: Iterable[str]) -> str:
    """An unordered list of HTML fragments."""
    return "<ul>" + "".join(f"<li>{e}</li>" for e in entries) + "</ul>"


def page(title: str, body: str) -> str:
    """A complete HTML document with the report's style sheet."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        "</body></html>\n"
    )


def rst_inline(text: str) -> str:
    """Docstring text (reStructuredText) as HTML: ``:math:`` roles rendered inline, literals and
    other roles as ``<code>``."""
    parts = re.split(r":math:`([^`]+)`", text)
    if len(parts) > 1:  # odd items are the math
        return "".join(equation(p, dpi=110, inline=True) if i % 2 else rst_inline(p)
                       for i, p in enumerate(parts))
    out = esc(text)
    out = re.sub(r":(?:func|class|mod|data|meth|attr):`~?([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"``([^`]+)``", r"<code>\1</code>", out)
    return re.sub(r"`([^`]+)`", r"<em>\1</em>", out)


def math_lines(latex: str) -> list[str]:
    """Split a displayed equation at ``\\qquad``/``\\quad`` separators and line breaks."""
    parts = re.split(r",?\s*\\q?quad\s*|\\\\", latex)
    return [p.strip().rstrip(",") for p in parts if p.strip()]


def rst_block(text: str) -> str:
    """A numpydoc/reStructuredText docstring as HTML: paragraphs, bullet lists and
    ``.. math::`` blocks (rendered by :func:`equation`); section titles become ``<h5>``."""
    lines = text.strip("\n").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.strip().startswith(".. math::"):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i].strip())
                i += 1
            out.extend(equation(p) for p in math_lines(" ".join(b for b in block if b)))
            continue
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}|={3,}", lines[i + 1].strip()):
            out.append(f"<h5>{esc(line.strip())}</h5>")
            i += 2
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(".. "):
            para.append(lines[i].strip())
            i += 1
        if para[0].startswith(("* ", "- ")):
            bullets: list[str] = []
            for p in para:
                if p.startswith(("* ", "- ")):
                    bullets.append(p[2:])
                else:
                    bullets[-1] += " " + p
            out.append(items(rst_inline(b) for b in bullets))
        else:
            out.append(f"<p>{rst_inline(' '.join(para))}</p>")
    return "\n".join(out)
