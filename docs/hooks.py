"""MkDocs hook: the generated reference pages (docs/gen_reference.py) are built from the code as it is
now, not from the committed copies; nothing is written into docs/. `tests/test_docs.py` checks that
the committed copies (read on GitHub) equal what the generator gives."""
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
_pages = None


def _generated() -> dict[str, str]:
    global _pages
    if _pages is None:
        sys.path.insert(0, str(DOCS))
        try:
            import gen_reference
        finally:
            sys.path.pop(0)
        _pages = {path.relative_to(DOCS).as_posix(): text for path, text in gen_reference.render().items()}
    return _pages


def on_page_read_source(page, config, **kwargs):
    return _generated().get(page.file.src_uri)
