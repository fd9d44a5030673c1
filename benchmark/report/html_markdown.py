"""The Markdown of report.md that the HTML report shows (findings, trust, known truth) as HTML: the
subset report.md uses (headings, paragraphs, bullet lists, pipe tables, code spans, bold, links,
fenced code). Images become links (the HTML folder loads nothing from outside itself), and links to
the report's own files point one folder up (html/ lies inside report/).
"""
from __future__ import annotations

import html
import re

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")


def _href(target: str) -> str:
    if re.match(r"^[a-z]+:|^#|^/", target):
        return target
    return "../" + target


def inline(text: str) -> str:
    """One line of Markdown as HTML: escaped, with code spans, bold and links."""
    codes: list[str] = []

    def keep(m: re.Match) -> str:
        codes.append(f"<code>{html.escape(m.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE.sub(keep, text)
    text = html.escape(text, quote=False)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _LINK.sub(lambda m: f'<a href="{html.escape(_href(m.group(2)))}">{m.group(1) or m.group(2)}</a>', text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)]


def _table(rows: list[str]) -> str:
    head = _cells(rows[0])
    body = [_cells(r) for r in rows[2:]] if len(rows) > 1 and set(rows[1].replace("|", "").strip()) <= set("-: ") \
        else [_cells(r) for r in rows[1:]]
    out = ['<div class="scroll"><table class="md"><thead><tr>']
    out += [f"<th>{inline(c)}</th>" for c in head]
    out.append("</tr></thead><tbody>")
    for r in body:
        out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def to_html(markdown: str, shift: int = 0) -> str:
    """Markdown (report.md's subset) as an HTML fragment; headings `shift` levels deeper."""
    out, para, items, table, fence = [], [], [], [], None

    def flush() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if table:
            out.append(_table(table))
            table.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if fence is not None:
            if line.startswith("```"):
                out.append(f"<pre>{html.escape(chr(10).join(fence))}</pre>")
                fence = None
            else:
                fence.append(raw)
            continue
        if line.startswith("```"):
            flush()
            fence = []
        elif m := re.match(r"^(#{1,6})\s+(.*)$", line):
            flush()
            level = min(6, len(m.group(1)) + shift)
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif line.lstrip().startswith("|"):
            if para or items:
                flush()
            table.append(line)
        elif re.match(r"^\s*[-*]\s+", line):
            if para or table:
                flush()
            items.append(re.sub(r"^\s*[-*]\s+", "", line))
        elif not line.strip():
            flush()
        elif items and raw.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if items or table:
                flush()
            para.append(line.strip())
    flush()
    return "\n".join(out)


def sections(markdown: str, titles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(title, body Markdown) of each `## ` section of report.md whose title starts with one of `titles`,
    in report order; the body runs to the next `## ` heading."""
    found, current, body = [], None, []
    for line in markdown.splitlines() + ["## "]:
        if line.startswith("## "):
            if current is not None:
                found.append((current, "\n".join(body)))
            title = line[3:].strip()
            current = title if any(title.startswith(t) for t in titles) else None
            body = []
        elif current is not None:
            body.append(line)
    return found
