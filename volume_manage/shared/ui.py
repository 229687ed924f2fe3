"""What the Temporal web UI shows of a workflow, in the operator's words, and links between
the pages.

The UI renders a workflow's summary, details and current details as Markdown, each in a
frame served at `<UI>/render`; a link's relative address resolves against that page, so
`namespaces/<ns>/workflows/<id>` opens the workflow's page under whatever address the UI
is served at (behind a proxy or a path prefix too; no host name is written into a
workflow). The frame opens links in a new tab. The renderer passes raw HTML through, so
everything a user typed (names, refs) is escaped before it goes in (`text`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Protocol

from volume_manage.shared import search

# What makes emphasis, code, links or tables inline (escaped with a backslash, as
# CommonMark allows), and what HTML would take as markup (as entities). `-`, `+`, `#` and
# `.` make lists and headings only at the start of a line, where no value goes.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()|~])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
MOST_LINKS = 100  # links a page's details list (a batch's volumes): the rest are counted


def ref_text(ref: Mapping[str, object]) -> str:
    """A ref as the operator typed it: `source-name=demo.qcow2` (`k=v, k=v`)."""
    return ", ".join(f"{key}={value}" for key, value in ref.items())


def plain(value: object) -> str:
    """`value` for a summary (one line the UI may also show as text): only what HTML
    would take as markup is escaped, so a ref reads as typed."""
    return "".join(_HTML.get(c, c) for c in str(value)).replace("\n", " ")


def text(value: object) -> str:
    """`value` as literal text in Markdown: no emphasis, link or HTML can come of it."""
    return _MARKDOWN.sub(r"\\\1", plain(value))


def workflow_path(namespace: str, workflow_id: str) -> str:
    """The workflow's page relative to the UI (its latest run: the UI adds the run id)."""
    return (f"namespaces/{urllib.parse.quote(namespace, safe='')}/workflows/"
            f"{urllib.parse.quote(workflow_id, safe='')}")


def list_path(namespace: str, query: str) -> str:
    """The UI's workflow list filtered by a visibility query, relative to the UI."""
    return (f"namespaces/{urllib.parse.quote(namespace, safe='')}/workflows?query="
            f"{urllib.parse.quote(query, safe='')}")


def workflow_link(namespace: str, workflow_id: str, label: str | None = None) -> str:
    return f"[{text(label or workflow_id)}]({workflow_path(namespace, workflow_id)})"


def list_link(namespace: str, query: str, label: str) -> str:
    return f"[{text(label)}]({list_path(namespace, query)})"


def volume_link(namespace: str, volume_id: str, label: str | None = None) -> str:
    """The list of everything about a volume: its own workflows and the batch that
    adopted it (`search.visibility_query`)."""
    return list_link(namespace, search.visibility_query(volume_id=volume_id),
                     label or f"everything about volume {volume_id}")


def fields(**values: object) -> str:
    """`**project** p · **name** n`, leaving out what is None or empty."""
    return " · ".join(f"**{name.replace('_', ' ')}** {text(value)}"
                      for name, value in values.items() if value not in (None, ""))


def lines(*parts: str) -> str:
    """Markdown paragraphs, one per part given (empty ones left out)."""
    return "\n\n".join(part for part in parts if part)


def full_url(ui_base: str, relative: str) -> str:
    """An address for outside the UI (the CLI prints it): the UI's base and a path above."""
    return f"{ui_base.rstrip('/')}/{relative}"


def adoption_links(namespace: str, volume_id: str, request_workflow_id: str | None) -> str:
    """An adoption's page: everything about its volume, and the request that cast it."""
    return lines(volume_link(namespace, volume_id),
                 "requested by " + workflow_link(namespace, request_workflow_id)
                 if request_workflow_id else "")


class _Item(Protocol):
    volume_id: str
    status: str


def batch_links(namespace: str, bulk_workflow_id: str, items: Sequence[_Item]) -> str:
    """A batch's page: its bulk adoption, and each volume it adopted (the first
    MOST_LINKS: the query that answers the page stays small)."""
    adopted = [item.volume_id for item in items if item.status == "available"]
    shown = [volume_link(namespace, vid, vid) for vid in adopted[:MOST_LINKS]]
    more = len(adopted) - len(shown)
    return lines(
        "part of " + workflow_link(namespace, bulk_workflow_id) if bulk_workflow_id else "",
        f"adopted {len(adopted)} of {len(items)} volumes"
        + (":" if shown else "") + "".join(f"\n- {link}" for link in shown)
        + (f"\n- … and {more} more" if more > 0 else ""))
