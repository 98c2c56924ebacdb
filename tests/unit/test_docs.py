"""Unit tests of what the docs show a learner: the drawings in docs/ (docs/lab.md, "Drawings")
are well-formed SVG with a size, a viewBox and a title, load nothing from elsewhere, and are
shown in README.md or SCENARIO.md (every drawing those two show exists; test_dashboard.sh renders
them in Chromium); the README's quick start ends on a result that teaches (what two servers at
the rate of one mean, and the commands that show the other outcome, each one a make target).
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
