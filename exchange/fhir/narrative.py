"""FHIR's narrative rules (R4 Narrative, invariants txt-1 and txt-2), which fhir.resources
does not check: `text.div` is XHTML holding only basic formatting, with no script, no
event attributes and no active links, and some content.

A narrative is shown to people (the console renders escaped text, but other systems render
the XHTML), so a resource carrying script is refused rather than stored.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, Final

from exchange.errors import Issue

XHTML_NAMESPACE: Final = "http://www.w3.org/1999/xhtml"
NARRATIVE_STATUSES: Final = frozenset({"generated", "extensions", "additional", "empty"})
#: txt-1: the basic formatting elements of HTML 4.0 chapters 10-15, `a` and `img`.
ALLOWED_ELEMENTS: Final = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    }
)
#: Attributes a narrative may carry; event handlers (`on*`) and everything else are refused.
ALLOWED_ATTRIBUTES: Final = frozenset(
    {
        "xmlns",
        "xml:lang",
        "lang",
        "dir",
        "id",
        "class",
        "title",
        "style",
        "name",
        "href",
        "src",
        "alt",
        "colspan",
        "rowspan",
        "span",
        "align",
        "valign",
        "width",
        "height",
        "border",
        "summary",
        "scope",
        "headers",
        "abbr",
        "cellpadding",
        "cellspacing",
    }
)
#: Link schemes that do something when followed or rendered.
_ACTIVE_SCHEMES: Final = ("javascript:", "vbscript:", "data:")


class _NarrativeReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.root: tuple[str, dict[str, str | None]] | None = None
        self.content = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.root is None:
            self.root = (tag, dict(attrs))
        if tag not in ALLOWED_ELEMENTS:
            self.problems.append(f"<{tag}> is not allowed in a narrative (txt-1)")
        for name, value in attrs:
            if name.startswith("on") or name not in ALLOWED_ATTRIBUTES:
                self.problems.append(
                    f"the attribute {name!r} is not allowed in a narrative (txt-1)"
                )
            elif name in ("href", "src") and (value or "").strip().lower().startswith(
                _ACTIVE_SCHEMES
            ):
                self.problems.append(
                    f"{name} may not use the {(value or '').split(':', 1)[0]}: scheme (txt-1)"
                )
            elif name == "style" and "url(" in (value or "").lower():
                self.problems.append("styles may not load resources (txt-1)")
        if tag == "img":
            self.content = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.content = True

    def handle_comment(self, data: str) -> None:
        self.problems.append("comments are not allowed in a narrative")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instructions are not allowed in a narrative")

    def unknown_decl(self, data: str) -> None:
        self.problems.append("declarations are not allowed in a narrative")


def narrative_issues(text: Any, expression: str) -> list[Issue]:
    """Problems with one Narrative (`<Type>.text`), each with its expression."""
    if not isinstance(text, dict):
        return []
    issues: list[Issue] = []
    if text.get("status") not in NARRATIVE_STATUSES:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                f"{expression}.status must be one of {', '.join(sorted(NARRATIVE_STATUSES))}",
                (f"{expression}.status",),
            )
        )
    div = text.get("div")
    if not isinstance(div, str):
        return [
            *issues,
            Issue("error", "required", f"{expression}.div is required", (f"{expression}.div",)),
        ]
    reader = _NarrativeReader()
    reader.feed(div)
    reader.close()
    if (
        reader.root is None
        or reader.root[0] != "div"
        or reader.root[1].get("xmlns") != XHTML_NAMESPACE
    ):
        reader.problems.insert(0, f'a narrative is one <div xmlns="{XHTML_NAMESPACE}">')
    if not reader.content:
        reader.problems.append("a narrative must have some non-whitespace content (txt-2)")
    issues += [
        Issue("error", "invariant", problem, (f"{expression}.div",))
        for problem in dict.fromkeys(reader.problems)
    ]
    return issues


def resource_narrative_issues(resource: dict[str, Any]) -> list[Issue]:
    """Problems with the narratives of a resource and of the resources it contains."""
    resource_type = str(resource.get("resourceType"))
    issues = narrative_issues(resource.get("text"), f"{resource_type}.text")
    contained = resource.get("contained")
    for index, item in enumerate(contained if isinstance(contained, list) else []):
        if isinstance(item, dict):
            issues += narrative_issues(item.get("text"), f"{resource_type}.contained[{index}].text")
    return issues
