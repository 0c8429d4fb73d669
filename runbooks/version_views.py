"""The admin's history of a runbook: every version (who, when, which write path, what changed) and one
version with its difference from another. Wired into the admin by runbooks/admin.py (admin_view: staff
only); the audit log's detail links here with the version an answer presented."""

from __future__ import annotations

import re

from django.contrib import admin
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe

from aihelper.core.rendering import render_markdown
from runbooks.authoring_access import may_see_runbook
from runbooks.diffs import field_changes, step_changes
from runbooks.models import Runbook, RunbookVersion
from runbooks.versions import runbook_version_pair, runbook_versions


def _context(request, runbook: Runbook, **extra) -> dict:
    opts = Runbook._meta
    return {**admin.site.each_context(request), "opts": opts, "runbook": runbook, **extra}


def versions_view(request, object_id):
    runbook = get_object_or_404(Runbook.objects.only("id", "name", "slug", "version"), pk=object_id)
    if not may_see_runbook(request.user, runbook):  # staff outside a restricted runbook's groups: not found
        raise Http404("No such runbook.")
    versions = list(runbook_versions(runbook.pk))
    return render(
        request,
        "admin/runbooks/versions.html",
        _context(request, runbook, title=f"Versions of {runbook.name}", versions=versions),
    )


def _against(request, runbook_id, number: int, previous: RunbookVersion | None) -> RunbookVersion | None:
    """The version to compare with: ?against=<number> when it exists, else the one before."""
    raw = request.GET.get("against", "")
    if re.fullmatch(r"[0-9]{1,9}", raw) and int(raw) != number:
        return RunbookVersion.objects.filter(runbook_id=runbook_id, number=int(raw)).first() or previous
    return previous


def version_view(request, object_id, number: int):
    runbook = get_object_or_404(Runbook.objects.only("id", "name", "slug", "version"), pk=object_id)
    if not may_see_runbook(request.user, runbook):  # staff outside a restricted runbook's groups: not found
        raise Http404("No such runbook.")
    version, previous = runbook_version_pair(runbook.pk, number)
    if version is None:
        return render(
            request,
            "admin/runbooks/version.html",
            _context(request, runbook, title=f"{runbook.name}: version {number}", number=number, missing=True),
            status=404,
        )
    against = _against(request, runbook.pk, number, previous)
    snapshot = version.snapshot
    context = _context(
        request,
        runbook,
        title=f"{runbook.name}: version {number}",
        number=number,
        version=version,
        against=against,
        fields=field_changes(against.snapshot, snapshot) if against else [],
        steps=step_changes(against.snapshot.get("steps", []), snapshot.get("steps", [])) if against else [],
        snapshot=snapshot,
        # render_markdown parses without raw HTML and sanitises with an allow-list (aihelper/core/rendering.py).
        body_html=mark_safe(render_markdown(snapshot.get("body_markdown", ""))),  # noqa: S308
        others=list(runbook_versions(runbook.pk).values_list("number", flat=True)),
    )
    return render(request, "admin/runbooks/version.html", context)
