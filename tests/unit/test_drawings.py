"""Unit tests of the drawings in docs/ (docs/lab.md, "Drawings"): each is well-formed SVG with a
size, a viewBox and a title, loads nothing from elsewhere, and is shown in README.md or
SCENARIO.md; every drawing those two show exists.  (test_dashboard.sh renders them in Chromium.)
Run: python3 tests/unit/test_drawings.py  (tests/run.sh runs it with the unit tests)."""
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


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1, argv=[sys.argv[0]]).result
    failed = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
    print("drawings: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
