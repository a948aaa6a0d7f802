"""``junit.xml``: the verdict as JUnit test cases, for CI systems that show those.

One ``<testcase>`` per invariant (classname ``oversold.invariants``) and per
threshold (classname ``oversold.thresholds``). A failed one carries a
``<failure>`` with the message and the first counterexamples; an ``unknown`` or
``not_applicable`` invariant is ``<skipped>`` with the reason. Built with ``xml.etree`` so
everything from the run is escaped; characters XML 1.0 cannot carry at all are
replaced.

Usage::

    xml_text = junit_xml(verdict, evaluation.thresholds, suite="oversold.flash_sale")
    (run_dir / "junit.xml").write_text(xml_text, encoding="utf-8")
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping

from oversold.checker import Verdict

from .thresholds import ThresholdResult

#: Counterexamples written into a failure's text; the report has all of them.
JUNIT_EXAMPLES = 5

# XML 1.0 forbids most C0 controls even escaped; a response body could carry them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def junit_xml(
    verdict: Verdict,
    thresholds: Iterable[ThresholdResult] = (),
    *,
    suite: str = "oversold",
    properties: Mapping[str, str] | None = None,
    elapsed_s: float | None = None,
) -> str:
    """The JUnit XML document (a ``<testsuites>`` with one ``<testsuite>``) as text."""
    thresholds = tuple(thresholds)
    cases: list[ET.Element] = []
    failures = skipped = 0
    for inv in verdict.invariants:
        case = ET.Element("testcase", classname="oversold.invariants", name=_clean(inv.name), time="0")
        if inv.status == "fail":
            failures += 1
            shown = inv.counterexamples[:JUNIT_EXAMPLES]
            text = inv.message
            if shown:
                text += (f"\n\n{len(shown)} of {len(inv.counterexamples)} counterexamples (all in results.json):\n"
                         + "\n".join(json.dumps(c, sort_keys=True) for c in shown))
            failure = ET.SubElement(case, "failure", message=_clean(inv.message), type="InvariantViolated")
            failure.text = _clean(text)
        elif inv.status in ("unknown", "not_applicable"):
            skipped += 1
            ET.SubElement(case, "skipped", message=_clean(inv.message))
        cases.append(case)
    for t in thresholds:
        case = ET.Element("testcase", classname="oversold.thresholds", name=_clean(f"{t.metric}: {t.expression}"),
                          time="0")
        if not t.passed:
            failures += 1
            failure = ET.SubElement(case, "failure", message=_clean(t.message), type="ThresholdFailed")
            failure.text = _clean(f"{t.message}\nobserved: {t.observed!r}")
        cases.append(case)

    root = ET.Element("testsuites", name="oversold", tests=str(len(cases)), failures=str(failures),
                      errors="0", skipped=str(skipped))
    ts = ET.SubElement(root, "testsuite", name=_clean(suite), tests=str(len(cases)), failures=str(failures),
                       errors="0", skipped=str(skipped), time=f"{elapsed_s or 0:.3f}")
    props = ET.SubElement(ts, "properties")
    for key, value in {"verdict": verdict.overall, **(properties or {})}.items():
        ET.SubElement(props, "property", name=_clean(key), value=_clean(value))
    ts.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
