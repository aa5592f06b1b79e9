"""Links in docs/ lead somewhere: every relative link and image names a
file of this tree (and, for a #anchor into a markdown page, one of its
headings), and docs/README.md indexes every page of docs/."""
import pytest

from docpages import DOCS, ROOT, anchors, links, pages

EXTERNAL = ("http://", "https://", "mailto:")


def relative_links(page):
    return [t for t in links(page) if not t.startswith(EXTERNAL)]


@pytest.mark.parametrize("page", pages(), ids=[str(p.relative_to(DOCS)) for p in pages()])
def test_relative_links_lead_to_files_and_headings(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: {dest.relative_to(ROOT)} has no heading #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(broken)


def test_the_index_links_every_page():
    index = DOCS / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in relative_links(index)}
    missing = [str(p.relative_to(DOCS)) for p in pages() if p != index and p.resolve() not in linked]
    assert not missing, f"docs/README.md does not link {missing}"


def test_links_are_found():
    # the parser must see links at all, or the tests above pass on nothing
    assert len(relative_links(DOCS / "README.md")) >= 10
