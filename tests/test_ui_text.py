"""What the workflows write for the web UI (volume_manage/shared/ui.py): refs as typed,
user text that cannot become markup, links relative to the UI."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

from volume_manage.shared import search, ui


def test_a_ref_reads_as_the_operator_typed_it() -> None:
    assert ui.ref_text({"source-name": "demo.qcow2"}) == "source-name=demo.qcow2"
    assert ui.ref_text({"source-id": "a", "k": "b"}) == "source-id=a, k=b"


def test_user_text_cannot_become_markup_or_html() -> None:
    hostile = 'x <img src=x onerror="alert(1)"> [link](http://e.vil) *em* `code`\nnext'
    escaped = ui.text(hostile)
    assert "<" not in escaped and ">" not in escaped
    for mark in ("[", "]", "(", ")", "*", "`"):
        assert f"\\{mark}" in escaped
    assert "\n" not in escaped
    assert ui.plain("a<b") == "a&lt;b"  # summaries: only HTML is escaped


def test_links_are_relative_to_the_ui() -> None:
    link = ui.workflow_link("default", "manage-volume-1")
    assert link == "[manage-volume-1](namespaces/default/workflows/manage-volume-1)"
    volume = ui.volume_link("default", "v-1")
    target = volume[volume.index("](") + 2:-1]
    assert not target.startswith(("/", "http"))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)["query"][0]
    assert query == search.visibility_query(volume_id="v-1")


def test_a_batch_lists_its_first_volumes_and_counts_the_rest() -> None:
    class Item:
        def __init__(self, n: int, status: str) -> None:
            self.volume_id, self.status = f"v-{n}", status

    items = [Item(n, "available") for n in range(ui.MOST_LINKS + 5)] + [Item(-1, "failed")]
    links = ui.batch_links("default", "bulk-x", items)
    assert links.startswith("part of [bulk-x](namespaces/default/workflows/bulk-x)")
    assert f"adopted {ui.MOST_LINKS + 5} of {len(items)} volumes" in links
    assert links.count("\n- [v-") == ui.MOST_LINKS and links.endswith("… and 5 more")


def test_the_running_long_view_asks_for_adoptions_started_before_a_moment() -> None:
    query = search.visibility_query(running=True, adoptions=True,
                                    started_before=datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    assert 'StartTime < "2026-12-02T09:30:00.000000Z"' in query
    assert '"ManageVolumeWorkflow"' in query and 'ExecutionStatus = "Running"' in query
