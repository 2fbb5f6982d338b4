"""The course website (``make site``): built once into a temporary folder from the committed notebooks and docs,
then read as a student's browser would get it. Nothing is executed; the build takes a few seconds."""
from __future__ import annotations

import html
import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
LOCAL_SCHEMES = ("", "data", "mailto", "javascript")      # data: URIs, mail links and "#" anchors stay in the page
URL_ATTRIBUTES = ("src", "href", "srcset", "poster", "action", "data")


def load_builder():
    """``site/build.py`` as a module (the folder is not a package: ``site`` is also a standard-library name)."""
    spec = importlib.util.spec_from_file_location("medxai_site_build", ROOT / "site" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Page(HTMLParser):
    """Every URL-valued attribute of a page (``(tag, attribute, value)``), its text, and the text inside
    ``<details>`` elements (the collapsed solutions) apart from the rest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.hidden: list[str] = []
        self.details = 0
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.details += 1
        if tag in ("script", "style"):
            self.skip += 1
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                values = [v.strip().split(" ")[0] for v in value.split(",")] if name == "srcset" else [value]
                self.urls += [(tag, name, v) for v in values if v]

    def handle_endtag(self, tag):
        if tag == "details":
            self.details -= 1
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            (self.hidden if self.details else self.text).append(data)


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def image_outputs(notebook: Path) -> int:
    """Outputs that render as an image (one ``<img>`` each)."""
    return sum(1 for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "code"
               for output in cell.get("outputs", []) if any(m in output.get("data", {}) for m in IMAGE_MIMES))


def outside_links(page_path: Path, site: Path, urls) -> list[str]:
    """URLs of a page that leave the site: another host or scheme (``http(s)://``, ``//host``, ``file:``), a
    relative path climbing out of ``site``, or a relative path to a file the site does not have."""
    bad = []
    for tag, attribute, value in urls:
        parts = urlsplit(value)
        if parts.scheme.lower() not in LOCAL_SCHEMES or parts.netloc:
            bad.append(f"<{tag} {attribute}={value!r}>: another host or scheme")
            continue
        if parts.scheme or not parts.path:           # data:, mailto:, javascript:, "#anchor"
            continue
        target = (page_path.parent / unquote(parts.path)).resolve()
        if site.resolve() not in (target, *target.parents):
            bad.append(f"<{tag} {attribute}={value!r}>: outside the site")
        elif not target.exists():
            bad.append(f"<{tag} {attribute}={value!r}>: no such file in the site")
    return bad


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    seconds = load_builder().build_site(out)          # -W: any Sphinx warning raises
    return out, seconds


def test_the_site_builds_offline_within_a_minute_and_keeps_build_files_out(site):
    out, seconds = site
    assert seconds <= 60, f"the site took {seconds:.0f} s to build (budget 60 s)"
    assert (out / "index.html").is_file() and (out / "search.html").is_file()
    leftovers = [p.relative_to(out).as_posix() for p in out.rglob("*")
                 if p.name in ("jupyter_execute", ".doctrees", "_sources") or p.suffix in (".doctree", ".pickle")]
    assert not leftovers, f"build files in the site: {leftovers[:5]}"


def test_every_notebook_has_a_page_with_every_image_output(site):
    out, _ = site
    for notebook in NOTEBOOKS:
        page_path = out / "notebooks" / f"{notebook.stem}.html"
        assert page_path.is_file(), f"no page for {notebook.name}"
        images = [v for tag, attribute, v in read_page(page_path).urls if tag == "img" and attribute == "src"]
        assert len(images) == image_outputs(notebook), (
            f"{page_path.name}: {len(images)} <img>, the notebook has {image_outputs(notebook)} image outputs")
        missing = [src for src in images if not (page_path.parent / unquote(src)).is_file()]
        assert not missing, f"{page_path.name}: images missing from the site: {missing}"


def test_each_notebook_page_prints_its_checked_claim_lines(site):
    out, _ = site
    claims = 0
    for notebook in NOTEBOOKS:
        lines = [line for cell in nbformat.read(notebook, as_version=4).cells
                 if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source
                 for output in cell.get("outputs", []) for line in output.get("text", "").splitlines()
                 if parse_line(line) is not None]
        page = read_page(out / "notebooks" / f"{notebook.stem}.html")
        text = "".join(page.text + page.hidden)
        missing = [line for line in lines if line.strip() not in text]
        assert not missing, f"{notebook.stem}: checked lines not on its page: {missing[:3]}"
        claims += sum(line.startswith("CLAIM ") for line in lines)
    assert claims >= len(NOTEBOOKS), f"only {claims} CLAIM lines in the committed notebooks"


def test_a_known_claim_line_is_on_notebook_03s_page(site):
    out, _ = site
    text = "".join(read_page(out / "notebooks" / "03_cam_vs_gradcam_mura.html").text)
    known = ("CLAIM CAM (= block-4 Grad-CAM) hits the evidence more often than every map made without a network: "
             "random, centre prior, the image, its Sobel edges (pointing game, 6-px tolerance)")
    assert known in text
    assert re.search(re.escape(known) + r" \(margin [\d.]+\) \| [\d.]+ \[[\d., ]+\] vs Sobel edges .* \| verdict: refuted",
                     text)


def test_no_page_loads_or_links_anything_outside_the_site(site):
    out, _ = site
    pages = sorted(out.rglob("*.html"))
    assert len(pages) >= len(NOTEBOOKS) + 6
    bad = [f"{p.relative_to(out)}: {problem}" for p in pages for problem in outside_links(p, out, read_page(p).urls)]
    assert not bad, "links leaving the site:\n" + "\n".join(bad[:20])
    for css in out.rglob("*.css"):                 # fonts and images a stylesheet would fetch
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(encoding="utf-8", errors="replace")):
            parts = urlsplit(url.strip())
            assert parts.scheme in ("", "data") and not parts.netloc, f"{css.relative_to(out)} loads {url}"


def test_the_link_check_catches_external_and_escaping_links(tmp_path):
    (tmp_path / "a.html").write_text("x")
    urls = [("script", "src", "https://cdn.example.org/x.js"), ("link", "href", "//fonts.example.org/f.css"),
            ("a", "href", "../../etc/passwd"), ("img", "src", "missing.png"), ("a", "href", "file:///etc/hosts"),
            ("a", "href", "a.html#top"), ("a", "href", "#here"), ("img", "src", "data:image/png;base64,AAAA"),
            ("a", "href", "mailto:someone@example.org")]
    problems = outside_links(tmp_path / "a.html", tmp_path, urls)
    assert len(problems) == 5 and all(v in " ".join(problems) for _, _, v in urls[:5])


def test_the_search_index_names_every_notebook(site):
    out, _ = site
    text = (out / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1:text.rindex(")")])
    docs = index["docnames"]
    for notebook in NOTEBOOKS:
        assert f"notebooks/{notebook.stem}" in docs, f"{notebook.stem} is not in the search index"
    gradcam = docs.index("notebooks/03_cam_vs_gradcam_mura")
    for term in ("grad", "cam"):                      # what a search for "Grad-CAM" looks up
        hits = [index[kind].get(term, []) for kind in ("terms", "titleterms")]
        assert any(gradcam in (h if isinstance(h, list) else [h]) for h in hits), f"{term!r} does not find notebook 03"


def test_index_links_every_page_in_the_lecture_order(site):
    out, _ = site
    links = [urlsplit(v).path for tag, attribute, v in read_page(out / "index.html").urls
             if tag == "a" and attribute == "href"]
    pages = [p.relative_to(out).as_posix() for p in out.rglob("*.html")
             if p.name not in ("index.html", "search.html", "genindex.html")]
    unlinked = sorted(set(pages) - set(links))
    assert not unlinked, f"index.html does not link {unlinked}"
    order = []
    for link in links:
        match = re.fullmatch(r"notebooks/(\d\d)_.*\.html", link)
        if match and match.group(1) not in order:
            order.append(match.group(1))
    table = (ROOT / "docs" / "teaching.md").read_text().split("## A suggested order", 1)[1].split("\n## ", 1)[0]
    lectures = []
    for row in re.findall(r"^\| \d+ \| ([^|]*)\|", table, flags=re.M):
        lectures += [n for n in re.findall(r"\b(\d\d)\b", row) if n not in lectures]
    assert order[:len(lectures)] == lectures, f"navigation {order} does not follow docs/teaching.md {lectures}"
    assert sorted(order) == [nb.name[:2] for nb in NOTEBOOKS]


def test_solution_cells_are_collapsed_behind_a_toggle(site):
    out, _ = site
    for notebook in NOTEBOOKS:
        solutions = [c for c in nbformat.read(notebook, as_version=4).cells if "solution" in c.metadata.get("tags", [])]
        raw = (out / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        assert raw.count("Show solution") == len(solutions) > 0, notebook.stem
        page = read_page(out / "notebooks" / f"{notebook.stem}.html")
        hidden, shown = html.unescape("".join(page.hidden)), html.unescape("".join(page.text))
        for cell in solutions:
            first = next(line.strip() for line in cell.source.splitlines() if line.strip())
            if cell.cell_type == "markdown":                   # rendered: no emphasis marks, curly quotes
                first = re.sub(r"[*`]", "", first).replace("'", "\u2019")
            first = first[:40]
            assert first in re.sub(r"\s+", " ", hidden), f"{notebook.stem}: solution {first!r} is not collapsed"
            assert first not in re.sub(r"\s+", " ", shown), f"{notebook.stem}: solution {first!r} is also shown"


def test_lecture_order_reads_the_teaching_table_and_names_a_missing_notebook():
    build = load_builder()
    teaching = ("## A suggested order\n\n| lecture | notebook | idea |\n|---|---|---|\n| 1 | 00 start, 01 tax | a |\n"
                "| 2 | 03 cam | b |\n\n## Next\n| 9 | 02 x | c |\n")
    names = ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb", "03_d.ipynb"]
    assert build.lecture_order(teaching, names) == [("Lecture 1", ["00_a", "01_b"]), ("Lecture 2", ["03_d"]),
                                                    ("More notebooks", ["02_c"])]
    with pytest.raises(ValueError, match="lecture 2 names notebook 03, which does not exist"):
        build.lecture_order(teaching, names[:3])
    with pytest.raises(ValueError, match="no '## A suggested order' section"):
        build.lecture_order("# nothing", names)


def test_collapse_solutions_leaves_the_committed_notebook_unchanged():
    build = load_builder()
    committed = nbformat.read(NOTEBOOKS[0], as_version=4)
    staged = nbformat.from_dict(json.loads(json.dumps(committed)))
    tagged = sum("solution" in c.metadata.get("tags", []) for c in committed.cells)
    assert build.collapse_solutions(staged) == tagged > 0
    assert nbformat.read(NOTEBOOKS[0], as_version=4) == committed
    code = [c for c in staged.cells if "solution" in c.metadata.get("tags", []) and c.cell_type == "code"]
    assert all("hide-cell" in c.metadata["tags"] and c.metadata["mystnb"]["code_prompt_show"] == "Show solution"
               for c in code)


def test_a_sphinx_warning_fails_the_build_naming_it(tmp_path):
    build = load_builder()
    root = tmp_path / "repo"
    for page in build.PAGES:
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        (root / page).write_text(f"# {page}\n\ntext\n")
    (root / "docs" / "teaching.md").write_text("# Teaching\n\n## A suggested order\n\n| lecture | notebook | idea |\n"
                                               "|---|---|---|\n| 1 | 00 a | x |\n")
    (root / "notebooks").mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# A notebook\n\nSee [the data](../data/README.md).")]
    nbformat.write(notebook, root / "notebooks" / "00_a.ipynb")
    build.build_site(tmp_path / "ok", root=root)                      # relative links between pages resolve
    assert (tmp_path / "ok" / "notebooks" / "00_a.html").is_file()
    (root / "README.md").write_text("# Readme\n\nSee [the missing page](docs/missing.md).\n")
    with pytest.raises(RuntimeError, match=r"sphinx-build failed[\s\S]*missing"):
        build.build_site(tmp_path / "bad", root=root)
    assert not (tmp_path / "bad").exists()
