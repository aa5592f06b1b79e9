"""Reading docs/*.md for the doc tests: the ```python blocks (and the
<!-- not-run: reason --> marks before some), the tables, the links and
the headings they may point at (GitHub's anchors)."""
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(.*?)\s*-->\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: Optional[str]  # the reason given in <!-- not-run: ... -->, or None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"


def pages() -> List[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(page: Path) -> Iterator[Block]:
    """Every fenced block of page, with the not-run mark right before it
    (blank lines between allowed)."""
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        mark = _NOT_RUN.match(before)
        yield Block(page, start + 1, lang.lower(), textwrap.dedent("\n".join(body)) + "\n",
                    mark.group(1) if mark else None)


def python_blocks() -> List[Block]:
    return [b for p in pages() for b in blocks(p) if b.lang in ("python", "py", "python3")]


def not_run_marks(page: Path) -> List[int]:
    """Lines (1-based) of every not-run mark of page."""
    return [n for n, ln in enumerate(page.read_text().splitlines(), 1) if _NOT_RUN.match(ln)]


def prose(page: Path, inline_code: bool = False) -> str:
    """page without its fenced blocks (and without its inline code unless
    inline_code), where links are not links."""
    out, fence = [], None
    for ln in page.read_text().splitlines():
        m = _FENCE.match(ln)
        if fence is None and m:
            fence = m.group(2)
            out.append("")
            continue
        if fence is not None:
            if ln.strip().startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(ln if inline_code else re.sub(r"`[^`]*`", "``", ln))
    return "\n".join(out)


def links(page: Path) -> List[str]:
    return _LINK.findall(prose(page))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, links and marks dropped,
    punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> List[str]:
    seen: Dict[str, int] = {}
    out = []
    for ln in prose(page, inline_code=True).splitlines():
        m = _HEADING.match(ln)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}-{n}")
    return out


def table(page: Path, first_header: str) -> List[Dict[str, str]]:
    """The rows of the markdown table of page whose first column is headed
    first_header, as {header: cell}."""
    lines = page.read_text().splitlines()
    for i, ln in enumerate(lines):
        cells = _row(ln)
        if cells and cells[0].lower() == first_header.lower() and i + 1 < len(lines) \
                and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            rows = []
            for body in lines[i + 2:]:
                row = _row(body)
                if not row:
                    break
                rows.append(dict(zip([c.lower() for c in cells], row)))
            return rows
    raise LookupError(f"{page.relative_to(ROOT)} has no table headed {first_header!r}")


def _row(line: str) -> Optional[List[str]]:
    line = line.strip()
    if not line.startswith("|"):
        return None
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]


def literals(cell: str) -> List[str]:
    """The `code` spans of a table cell."""
    return re.findall(r"`([^`]*)`", cell)
