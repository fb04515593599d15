"""The docs' diagrams (issue #23): SVG drawn offline by docs/img/diagrams.py, committed as its
output, self-contained (the docs site fetches nothing), embedded with a text version."""

import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"


def drawn():
    spec = importlib.util.spec_from_file_location("docs_diagrams", IMG / "diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def test_the_committed_svgs_are_what_the_script_draws():
    svgs = drawn()
    assert set(svgs) == {"overview.svg", "connect.svg", "message.svg", "send.svg"}
    for name, svg in svgs.items():
        assert (IMG / name).read_text() == svg, f"docs/img/{name} is stale: run python docs/img/diagrams.py"


@pytest.mark.parametrize("name", ["overview.svg", "connect.svg", "message.svg", "send.svg"])
def test_each_svg_is_self_contained_and_scales(name):
    text = (IMG / name).read_text()
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title").text  # read by screen readers
    width = int(root.get("width"))
    assert root.get("viewBox") == f"0 0 {width} {root.get('height')}"  # scales down with the column
    assert width <= 720  # at most the docs' text column: shrinks to fit, never scrolls sideways
    # Nothing fetched: no script, no external reference (the namespace is an identifier, not a fetch).
    assert "<script" not in text and "href" not in text and "@import" not in text
    assert re.findall(r"https?://[^\"' )]+", text) == ["http://www.w3.org/2000/svg"]


@pytest.mark.parametrize(
    "page,images",
    [
        ("README.md", ["docs/img/overview.svg"]),
        ("docs/index.md", ["img/overview.svg"]),
        ("docs/architecture.md", ["img/overview.svg", "img/connect.svg", "img/message.svg", "img/send.svg"]),
    ],
)
def test_the_pages_embed_them_with_a_text_version(page, images):
    text = (ROOT / page).read_text()
    for image in images:
        [alt] = re.findall(rf"!\[([^\]]+)\]\({re.escape(image)}\)", text)
        assert len(alt) > 80  # says what the picture shows
    # The overview's text version, folded under the picture.
    assert "<details markdown><summary>The same, as text</summary>" in text
    assert "wss://ws.example.com" in text.split("The same, as text")[1]
