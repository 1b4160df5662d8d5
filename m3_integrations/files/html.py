"""HTML: the visible text (BeautifulSoup), without scripts and styles, under its h1-h6 heading path."""

from __future__ import annotations

from ._assemble import assemble, by_headings, need
from ._types import InputError, Record, SourceFile
from .text import decode

_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption")


def read_html(file: SourceFile) -> list[Record]:
    """The visible text of an HTML page (BeautifulSoup), grouped under its h1-h6 heading path."""
    bs4 = need("bs4", "beautifulsoup4")
    html = decode(file.path.read_bytes(), file.path)
    try:
        soup = bs4.BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
            tag.decompose()
        blocks: list[tuple[int | None, str]] = []
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for element in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", *_BLOCKS]):
            if element.find_parent(_BLOCKS) is not None:
                continue  # its text is part of the enclosing block
            text = element.get_text(" ", strip=True)
            level = int(element.name[1]) if element.name[0] == "h" and element.name[1:].isdigit() else None
            blocks.append((level, text))
        if not blocks:  # no block markup: all the visible text
            blocks = [(None, soup.get_text("\n", strip=True))]
        if title and not any(level is not None for level, _ in blocks):
            blocks.insert(0, (None, title))
    except Exception as exc:
        raise InputError(f"{file.path}: cannot read HTML ({type(exc).__name__}: {exc})") from None
    return assemble(by_headings(blocks), file)
