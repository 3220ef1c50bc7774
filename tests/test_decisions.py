"""docs/decisions.md, the project's device rules: every test it names exists, every rule the tree
cites is defined there, and every rule is pinned by a test or listed as not pinned yet.

Plain text and :mod:`ast` only (no simulation, no collection), so it runs in well under a second.
"""

import ast
import functools
import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
DECISIONS = ROOT / "docs" / "decisions.md"

#: Where rule numbers are cited: the code, its tests and the documentation.
CITING = ["hw", "sim", "boards", "tests", "docs", "README.md", "pyproject.toml"]
CITING_SUFFIXES = {".py", ".md", ".toml"}

#: The heading of the section that lists rules no test pins yet.
UNPINNED_HEADING = "Rules without a pinning test"

_RULE_HEADING = re.compile(r"^#{2,3} (D\d+[a-z]?)\. ", re.M)
_HEADING = re.compile(r"^#{1,3} ", re.M)
_TEST_ID = re.compile(r"\btests/[\w/]+\.py::\w+(?:::\w+)?")
# "D7", "D8a"; a range "D1-D10", "D1–D10" or "D3 to D7" cites every rule in it.
_CITATION = re.compile(r"\bD(\d+)([a-z]?)\b")
_RANGE = re.compile(r"\bD(\d+)\s*(?:-|–|to)\s*D(\d+)\b")
_UNPINNED_ENTRY = re.compile(r"^- \*\*(D\d+[a-z]?)\*\*", re.M)


def _text():
    return DECISIONS.read_text(encoding="utf-8")


def _rules():
    """``{rule: body}``: each rule's text, up to the next heading of any level."""
    text = _text()
    starts = [m.start() for m in _HEADING.finditer(text)] + [len(text)]
    rules = {}
    for m in _RULE_HEADING.finditer(text):
        end = min(s for s in starts if s > m.start())
        assert m.group(1) not in rules, f"{m.group(1)} is defined twice"
        rules[m.group(1)] = text[m.start():end]
    return rules


def _unpinned_section():
    text = _text()
    m = re.search(rf"^## {re.escape(UNPINNED_HEADING)}$", text, re.M)
    assert m, f"docs/decisions.md has no section '{UNPINNED_HEADING}'"
    rest = text[m.end():]
    following = _HEADING.search(rest)
    return rest[:following.start()] if following else rest


@functools.cache
def _tests_in(path):
    """Test names defined in ``path``: ``test_x`` and ``TestY::test_x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return {name for name in names if name.split("::")[-1].startswith("test_")}


def _citing_files():
    for entry in CITING:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*")
                              if p.suffix in CITING_SUFFIXES and "__pycache__" not in p.parts)


def _citations(line):
    """Rule numbers cited in one line of text."""
    cited = {f"D{number}{letter}" for number, letter in _CITATION.findall(line)}
    for first, last in _RANGE.findall(line):
        cited.update(f"D{n}" for n in range(int(first), int(last) + 1))
    return cited


# --- the tests ----------------------------------------------------------------------------------

def test_every_named_test_exists():
    ids = sorted(set(_TEST_ID.findall(_text())))
    assert len(ids) >= 50, "the test names in docs/decisions.md were not found"
    missing = []
    for test_id in ids:
        path, name = test_id.split("::", 1)
        file = ROOT / path
        if not (file.name.startswith("test_") and file.is_file()) or name not in _tests_in(file):
            missing.append(test_id)
    assert not missing, f"docs/decisions.md names tests that do not exist: {missing}"


def test_every_cited_rule_is_defined():
    rules = _rules()
    undefined = []
    found = 0
    for path in _citing_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for rule in sorted(_citations(line)):
                found += 1
                if rule not in rules:
                    undefined.append(f"{path.relative_to(ROOT)}:{number}: {rule}")
    assert found >= 50, "no rule citations found: is the pattern still right?"
    assert not undefined, f"rules cited but not defined in docs/decisions.md: {undefined}"


def test_rules_are_numbered_as_the_code_cites_them():
    rules = _rules()
    # D1 to D11 keep their numbers: the code and older documents cite them.
    assert {f"D{n}" for n in range(1, 12)} <= set(rules)
    numbers = sorted({int(re.match(r"D(\d+)", r).group(1)) for r in rules})
    assert numbers == list(range(1, numbers[-1] + 1)), f"gaps in the numbering: {numbers}"
    for rule in rules:
        parent = re.match(r"D\d+", rule).group()
        assert parent in rules, f"{rule} refines {parent}, which is not defined"


def test_every_rule_is_pinned_or_listed_as_unpinned():
    rules = _rules()
    unpinned = set(_UNPINNED_ENTRY.findall(_unpinned_section()))
    assert unpinned <= set(rules), f"unpinned list names unknown rules: {unpinned - set(rules)}"
    bare = [rule for rule, body in rules.items() if not _TEST_ID.search(body)]
    assert set(bare) <= unpinned, \
        f"rules that name no test and are not listed as unpinned: {sorted(set(bare) - unpinned)}"


@pytest.mark.parametrize("line, cited", [
    ("decisions.md D6: nothing lost", {"D6"}),
    ("(decisions.md D3 to D7)", {"D3", "D4", "D5", "D6", "D7"}),
    ("D1–D10 and D8a", {f"D{n}" for n in range(1, 11)} | {"D8a"}),
    ("decisions.md D8/D10", {"D8", "D10"}),
    ("ECP5-25, 0xD1, DPR, IHI 0022", set()),
])
def test_citations_are_read_as_written(line, cited):
    assert _citations(line) == cited


def test_no_file_refers_outside_the_repository():
    # A user who clones the repository has only what is in it: no path may climb out of it to the
    # sibling folder the project's notes came from. (Spelt in two parts so this file passes.)
    needle = "../" + "shared"
    skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".hypothesis"}
    offenders = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if parts & skip or any(p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue                # binary (the waveform picture)
        offenders += [f"{path.relative_to(ROOT)}:{n}" for n, line in
                      enumerate(text.splitlines(), 1) if needle in line]
    assert not offenders, offenders
