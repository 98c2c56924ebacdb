"""Unit tests of what the docs show a learner: the drawings in docs/ (docs/lab.md, "Drawings")
are well-formed SVG with a size, a viewBox and a title, load nothing from elsewhere, and are
shown in README.md or SCENARIO.md (every drawing those two show exists; test_dashboard.sh renders
them in Chromium); the README's quick start ends on a result that teaches (what two servers at
the rate of one mean, and the commands that show the other outcome, each one a make target);
every relative link of every Markdown file, and every repository path it quotes as code
(`docs/lab.md`, `deploy/compose/nginx.conf`), leads to a file that exists, and a link's
#anchor to a heading of that file (each topic has one page, the others link to it).
Run: python3 tests/unit/test_docs.py  (tests/run.sh runs it with the unit tests)."""
import glob
import os
import re
import sys
import unittest
import xml.etree.ElementTree as ElementTree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SVG = "{http://www.w3.org/2000/svg}"
WANTED = ("architecture.svg", "one-vs-many.svg", "vertical-vs-horizontal.svg")


def shown_in(name):
    with open(os.path.join(REPO, name)) as f:
        return re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.svg)\)", f.read())


class Drawings(unittest.TestCase):
    def test_the_three_drawings_are_there_and_well_formed(self):
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "docs", "*.svg")))
        for name in WANTED:
            self.assertIn(name, found)
        for name in found:
            path = os.path.join(REPO, "docs", name)
            root = ElementTree.parse(path).getroot()  # raises on a malformed file
            self.assertEqual(root.tag, SVG + "svg", name)
            for attribute in ("width", "height", "viewBox"):
                self.assertIn(attribute, root.attrib, name)
            title = root.find(SVG + "title")
            self.assertTrue(title is not None and title.text.strip(), "%s has no <title>" % name)
            with open(path) as f:
                text = f.read()
            self.assertNotRegex(text, r'(href|src)="(https?:)?//', "%s loads something from elsewhere" % name)
            self.assertNotIn("<script", text, name)
            # Every arrow's marker is defined in the file.
            for marker in set(re.findall(r"url\(#([\w-]+)\)", text)):
                self.assertIn('id="%s"' % marker, text, name)

    def test_each_drawing_is_shown_and_each_shown_drawing_exists(self):
        shown = set(shown_in("README.md")) | set(shown_in("SCENARIO.md"))
        for name in WANTED:
            self.assertIn("docs/" + name, shown, "%s is not shown in README.md or SCENARIO.md" % name)
        for path in shown:
            self.assertTrue(os.path.isfile(os.path.join(REPO, path)), path)


# [text](target) and ![alt](target); a target with a scheme (https:, mailto:) is not checked.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A repository path quoted as code: `docs/lab.md`, `deploy/compose/nginx.conf`.
QUOTED_PATH = re.compile(r"`((?:docs|solution|deploy|scripts|tests|lab|server|lib|loadtest|dbtool|sql|dashboard"
                         r"|fuzz)/[\w./-]*\w)`")
SKIPPED_DIRS = {"node_modules", "var", ".git"}


def markdown_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(("build", ".")))
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def heading_anchors(path):
    """The anchors a renderer such as GitHub's gives the file's headings."""
    with open(path, encoding="utf-8") as f:
        titles = re.findall(r"^#+\s+(.*?)\s*$", re.sub(r"```.*?```", "", f.read(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-") for t in titles}


def broken_links(root):
    """Each broken link as 'FILE: TARGET (why)', FILE relative to root."""
    broken = []
    for path in markdown_files(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        name = os.path.relpath(path, root)
        for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                broken.append("%s: %s (no such file)" % (name, target))
            elif anchor and dest.endswith(".md") and anchor not in heading_anchors(dest):
                broken.append("%s: %s (no such heading)" % (name, target))
        for quoted in QUOTED_PATH.findall(text):
            if not os.path.exists(os.path.join(root, quoted)):
                broken.append("%s: `%s` (no such path)" % (name, quoted))
    return broken


class Links(unittest.TestCase):
    def test_every_relative_link_and_quoted_path_resolves(self):
        broken = broken_links(REPO)
        self.assertEqual(broken, [], "\n".join(broken))

    def test_the_check_finds_a_broken_link_a_missing_heading_and_a_moved_file(self):
        import shutil
        import tempfile
        root = tempfile.mkdtemp(prefix="catalog-docs-test.")
        try:
            os.makedirs(os.path.join(root, "docs"))
            with open(os.path.join(root, "docs", "lab.md"), "w") as f:
                f.write("# The lab\n\n## How to scale\n")
            with open(os.path.join(root, "README.md"), "w") as f:
                f.write("[ok](docs/lab.md#how-to-scale) [web](https://example.org/x) `docs/lab.md`\n"
                        "[gone](docs/api.md) [no heading](docs/lab.md#scaling) `solution/nginx.conf`\n"
                        "```\n[in a code block](not/checked.md)\n```\n")
            self.assertEqual(broken_links(root), [
                "README.md: docs/api.md (no such file)",
                "README.md: docs/lab.md#scaling (no such heading)",
                "README.md: `solution/nginx.conf` (no such path)",
            ])
        finally:
            shutil.rmtree(root)


class QuickStart(unittest.TestCase):
    def test_the_quick_start_says_what_a_ratio_near_one_means_and_how_to_see_the_other(self):
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        start = readme.index("## Quick start")
        quick = readme[start:readme.index("\n## ", start + 1)]
        block_end = quick.rindex("```")
        after = quick[block_end:]
        self.assertIn("make scale SERVERS=2", quick[:block_end])
        self.assertRegex(after, r"1\.0x", "the quick start does not say what a ratio near 1.0x means")
        self.assertIn("PostgreSQL is the ceiling", after)
        other = re.findall(r"`([^`]*MIX=browse[^`]*)`", after)
        self.assertTrue(other, "no command for the other outcome")
        self.assertTrue(all("SERVER_CPUS=0.25" in c for c in other), other)
        with open(os.path.join(REPO, "Makefile")) as f:
            targets = set(re.findall(r"^([a-z][a-z-]*):", f.read(), re.M))
        for command in other:
            for target in re.findall(r"make ([a-z][a-z-]*)", command):
                self.assertIn(target, targets, command)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1, argv=[sys.argv[0]]).result
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    print("docs: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
