"""Elasticsearch retention: an ILM policy and the index template, or, without ILM, ``enforce``.

With ILM, the policy deletes an index ``days`` (plus a margin) after its creation; the daily
``archive run --settled 26h`` archived it weeks before (no ``wait_for_snapshot``: the archive is
ours, not a snapshot repository). The policy is attached through the index template (for new indices) and
set on existing indices that lack it (the sink reinstalls its own template when its hash differs,
so attaching to existing indices keeps them covered whatever template won last).

Without ILM (the OSS / integ-test distributions answer ``_ilm`` with 400 "no handler found"),
``enforce`` deletes daily indices older than the policy, and only those whose day passes
:func:`shipper.jobs.gate.may_delete`'s check: the manifest is there, the deep verify passes, and the
archive holds at least as many documents of that index as the index does (an export) or as the
day's indices (archived at ingest).

With ILM, ``apply --ilm-margin-days N`` puts the delete phase N days after the retention: ILM is
then only the backstop, and ``enforce`` (run daily on ILM clusters too) deletes an index at the
retention once its archive verifies. ILM alone deletes on age and cannot wait for our archive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import orjson

from shipper.archive.storage.base import ObjectStore
from shipper.errors import JobError
from shipper.jobs.exporters.base import unit_name
from shipper.jobs.gate import coverage_problems, verified_archive
from shipper.jobs.http import JobHttp, body_excerpt
from shipper.jobs.retention.loki import parse_duration
from shipper.jobs.retention.report import Finding
from shipper.sinks.elasticsearch.template import ilm_policy, index_template

log = logging.getLogger("shipper.jobs")
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class EsRetentionTarget:
    """The indices of one Elasticsearch sink: ``index`` is its strftime name (``ecvi-logs-%Y.%m.%d``)."""

    index: str
    pattern: str
    template_name: str
    priority: int = 200
    data_stream: bool = False

    def policy_name(self, days: int) -> str:
        """``ecvi-logs-30d``: the name ``deploy/elasticsearch`` installs the 30-day policy under."""
        return f"{self.template_name}-{days}d"

    def day_of(self, index: str) -> date | None:
        """The day a daily index holds (None for names the strftime pattern does not produce)."""
        if "%" not in self.index:
            return None
        try:
            return datetime.strptime(index, self.index).date()
        except ValueError:
            return None


def ilm_state(resp: httpx.Response) -> str:
    """``present``, ``missing`` or ``unavailable`` from the answer to ``GET _ilm/policy/<name>``.

    A cluster with ILM answers an unknown policy with 404 and an Elasticsearch error object; one
    without ILM (no x-pack) does not know the endpoint: 400 "no handler found", 405, or a bare 404.
    """
    if resp.status_code == 200:
        return "present"
    if resp.status_code == 404 and _is_es_error(resp):
        return "missing"
    return "unavailable"


def _template(target: EsRetentionTarget, policy: str | None) -> dict[str, Any]:
    return index_template(target.pattern, data_stream=target.data_stream, priority=target.priority,
                          ilm_policy=policy)


def apply(http: JobHttp, target: EsRetentionTarget, days: int, *, margin_days: int = 0,
          dry_run: bool = False) -> list[Finding]:
    """Install the ILM policy (delete at ``days + margin_days``), the template, and attach the policy
    to existing indices."""
    out: list[Finding] = []
    delete_after = days + margin_days
    body = ilm_policy(delete_after, rollover=target.data_stream)
    name = target.policy_name(days)
    url = f"/_ilm/policy/{name}"
    current = http.request("GET", url, ok=(200, 400, 404, 405))
    has_ilm = ilm_state(current) != "unavailable"
    if not has_ilm:
        out.append(Finding("elasticsearch", http.base_url, "ilm", "available", "unavailable", True,
                           action="none", note="run `retention enforce` daily to delete archived indices"))
    else:
        actual = _policy_days(current)
        same = actual == delete_after
        action = "unchanged" if same else ("would install" if dry_run else "installed")
        if not same and not dry_run:
            http.request("PUT", url, content=orjson.dumps(body), headers=_JSON)
        out.append(Finding("elasticsearch", name, "ilm delete min_age", f"{delete_after}d",
                           f"{actual}d" if actual is not None else "(missing)", True, action=action,
                           note=_margin_note(days, margin_days)))
    out.append(_install_template(http, target, name if has_ilm else None, dry_run))
    if has_ilm:
        out += _attach_policy(http, target, name, dry_run)
    return out


def _margin_note(days: int, margin_days: int) -> str:
    if not margin_days:
        return ""
    return (f"ILM deletes {margin_days} days after the {days}-day retention, as a backstop: run "
            "`retention enforce` daily to delete archived indices at the retention")


def _is_es_error(resp: httpx.Response) -> bool:
    try:
        return isinstance(orjson.loads(resp.content).get("error"), dict)
    except (orjson.JSONDecodeError, AttributeError):
        return False


def _policy_days(resp: httpx.Response) -> int | None:
    """The delete phase's ``min_age`` in days from ``GET _ilm/policy/<name>`` (None if absent)."""
    if resp.status_code != 200:
        return None
    doc = orjson.loads(resp.content)
    for body in doc.values():
        min_age = (body.get("policy", {}).get("phases", {}).get("delete", {}).get("min_age"))
        if isinstance(min_age, str) and min_age.endswith("d") and min_age[:-1].isdigit():
            return int(min_age[:-1])
        if isinstance(min_age, str):
            return int(parse_duration(min_age) / timedelta(days=1))
    return None


def _install_template(http: JobHttp, target: EsRetentionTarget, policy: str | None, dry_run: bool) -> Finding:
    body = _template(target, policy)
    url = f"/_index_template/{target.template_name}"
    current = http.request("GET", url, ok=(200, 404))
    actual = _template_hash(current)
    want = body["_meta"]["hash"]
    if actual == want:
        action = "unchanged"
    elif dry_run:
        action = "would install"
    else:
        http.request("PUT", url, content=orjson.dumps(body), headers=_JSON)
        action = "installed"
    return Finding("elasticsearch", target.template_name, "index template", want, actual or "(missing)", True,
                   action=action, note=f"patterns {body['index_patterns']}" + (
                       f", index.lifecycle.name={policy}" if policy else ""))


def _template_hash(resp: httpx.Response) -> str | None:
    if resp.status_code != 200:
        return None
    found = orjson.loads(resp.content).get("index_templates") or [{}]
    meta = found[0].get("index_template", {}).get("_meta") or {}
    value = meta.get("hash")
    return str(value) if value else None


def _attach_policy(http: JobHttp, target: EsRetentionTarget, policy: str, dry_run: bool) -> list[Finding]:
    resp = http.request("GET", f"/{target.pattern}/_settings/index.lifecycle.name",
                        params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    current = {name: body.get("settings", {}).get("index", {}).get("lifecycle", {}).get("name")
               for name, body in orjson.loads(resp.content).items()}
    missing = sorted(name for name, attached in current.items() if attached != policy)
    if not missing:
        return []
    if not dry_run:
        http.request("PUT", f"/{','.join(missing)}/_settings", headers=_JSON,
                     content=orjson.dumps({"index": {"lifecycle": {"name": policy}}}))
    return [Finding("elasticsearch", ",".join(missing[:5]) + ("..." if len(missing) > 5 else ""),
                    "index.lifecycle.name", policy, "(unset)", True,
                    action="would attach" if dry_run else f"attached to {len(missing)} indices")]


def _daily_indices(http: JobHttp, target: EsRetentionTarget) -> list[tuple[str, date, int]]:
    """``(index, day, doc count)`` of every daily index of the target."""
    resp = http.request("GET", f"/_cat/indices/{target.pattern}", params={
        "format": "json", "h": "index,docs.count", "expand_wildcards": "open,closed"}, ok=(200, 404))
    if resp.status_code == 404:
        return []
    out = []
    for row in orjson.loads(resp.content):
        day = target.day_of(row["index"])
        if day is not None:
            out.append((row["index"], day, int(row.get("docs.count") or 0)))
    return sorted(out, key=lambda r: (r[1], r[0]))


def check(http: JobHttp, target: EsRetentionTarget, days: int, *, now: datetime,
          margin_days: int = 0) -> list[Finding]:
    """Drift: the policy's delete age, the template, indices older than the policy."""
    out: list[Finding] = []
    name = target.policy_name(days)
    current = http.request("GET", f"/_ilm/policy/{name}", ok=(200, 400, 404, 405))
    has_ilm = ilm_state(current) != "unavailable"
    if has_ilm:
        actual = _policy_days(current)
        out.append(Finding("elasticsearch", name, "ilm delete min_age", f"{days + margin_days}d",
                           f"{actual}d" if actual is not None else "(missing)", actual == days + margin_days,
                           note=_margin_note(days, margin_days)))
    else:
        out.append(Finding("elasticsearch", http.base_url, "ilm", "available", "unavailable", True,
                           note="retention relies on `retention enforce`"))
    want = _template(target, name if has_ilm else None)["_meta"]["hash"]
    actual_hash = _template_hash(http.request("GET", f"/_index_template/{target.template_name}", ok=(200, 404)))
    out.append(Finding("elasticsearch", target.template_name, "index template", want, actual_hash or "(missing)",
                       actual_hash == want, note="" if actual_hash == want else "run `retention apply`"))
    cutoff = now.date() - timedelta(days=days)
    for index, day, count in _daily_indices(http, target):
        if day < cutoff:
            out.append(Finding("elasticsearch", index, "age", f"<= {days} days",
                               f"{(now.date() - day).days} days ({count} docs)", False,
                               note="run `retention enforce` (ILM deletes it later on its own)" if has_ilm
                               else "run `retention enforce`"))
    return out


def enforce(http: JobHttp, target: EsRetentionTarget, days: int, store: ObjectStore, *, now: datetime,
            dry_run: bool = False) -> list[Finding]:
    """Delete daily indices older than ``days`` whose day is archived and verifies; keep the rest."""
    if "%" not in target.index or target.data_stream:
        raise JobError(f"retention enforce deletes daily indices (an index name with strftime fields such as "
                       f"ecvi-logs-%Y.%m.%d), not {target.index!r}: a data stream needs ILM")
    out: list[Finding] = []
    cutoff = now.date() - timedelta(days=days)
    old = [r for r in _daily_indices(http, target) if r[1] < cutoff]
    by_day: dict[date, list[tuple[str, int]]] = {}
    for index, day, count in old:
        by_day.setdefault(day, []).append((index, count))
    for day, indices in sorted(by_day.items()):
        verdict = verified_archive(store, day, deep=True)
        manifest = verdict.manifest
        day_counts = {unit_name("index", index): count for index, count in indices}
        for index, count in indices:
            reasons = list(verdict.reasons)
            if manifest is not None:
                counts = day_counts if manifest.route == "ingest" else {unit_name("index", index): count}
                reasons += coverage_problems(manifest, "elasticsearch", counts)
            if reasons:
                out.append(Finding("elasticsearch", index, "delete", "archived and verified", "kept", False,
                                   action="kept", note=f"{day}: " + "; ".join(reasons)))
                continue
            if not dry_run:
                resp = http.request("DELETE", f"/{index}", ok=(200, 404))
                if resp.status_code != 200:
                    log.warning("index %s was already gone: %s", index, body_excerpt(resp))
            out.append(Finding("elasticsearch", index, "delete", "archived and verified",
                               f"{(now.date() - day).days} days old, {count} docs archived in {store.url}", True,
                               action="would delete" if dry_run else "deleted"))
    return out
