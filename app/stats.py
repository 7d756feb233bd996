"""Stats page: a streamer's events per day and top supporters, with CSV.

The charts come from the reports in ``sql/``. The page embeds each chart's
labels and numbers in a ``data-chart`` attribute, because the
Content-Security-Policy forbids inline scripts; ``static/stats.js`` draws
them with the vendored Chart.js. Each report can also be downloaded as CSV
or read as JSON for the same range of UTC days.
"""

import csv
import io
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import Response
from flask import abort
from flask import jsonify
from flask import render_template
from flask import request
from flask import url_for

from app.catalogue import GROUPS
from app.catalogue import find_feed_type
from app.errors import ApiError
from app.extensions import db
from app.logins import normalize_login
from app.reports import ISO_DAY
from app.reports import Report
from app.reports import Result
from app.reports import load_reports
from app.reports import run_report

bp = Blueprint("stats", __name__)

DATE_RULE = "an ISO date, YYYY-MM-DD, such as 2026-03-14"
PRESET_DAYS = (7, 30, 90)
# Filling every day of a range keeps gaps visible, but a range typed as
# 1900-01-01 to today must not become 45,000 empty bars.
MAX_FILLED_DAYS = 400
# Spreadsheets run a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RangeError(ValueError):
    """A ``since`` or ``until`` we cannot use; the message says what is accepted."""


@dataclass(frozen=True)
class Range:
    since: str | None
    until: str | None


@dataclass(frozen=True)
class Panel:
    report: str
    title: str
    empty: str


PANELS = (
    Panel("events-by-day", "Events per day", "No events in this range."),
    Panel("follows-by-day", "New followers per day", "No follows in this range."),
    Panel("top-gifters", "Top gifters", "No gifted subs in this range."),
    Panel("top-cheerers", "Top cheerers", "No cheers in this range."),
)
PANEL_REPORTS = {panel.report for panel in PANELS}


@bp.get("/<login>")
def stats(login: str):
    """Show a streamer's charts for the chosen range of UTC days.

    404 for a login that breaks Twitch's rule, 400 for a bad date.
    """
    login = page_login(login)
    try:
        span = read_range(request.args)
    except RangeError as e:
        return render_stats(login, None, [], error=as_sentence(e)), 400

    reports = load_reports()
    panels = [build_panel(panel, reports, login, span) for panel in PANELS]
    return render_stats(login, span, panels, error=None)


@bp.get("/<login>/<name>.csv")
def report_csv(login: str, name: str):
    """Download one report of the stats page as CSV; 400 for a bad date."""
    login = page_login(login)
    if name not in PANEL_REPORTS:
        abort(404, description=f"No such report: {name!r}; known: {known_reports()}.")
    try:
        span = read_range(request.args)
    except RangeError as e:
        abort(400, description=as_sentence(e))

    result = run_for(load_reports()[name], login, span)
    filename = f"{login}-{name}-{range_slug(span)}.csv"
    return Response(
        to_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/<login>/<name>.json")
def report_json(login: str, name: str):
    """Answer one report of the stats page as JSON rows.

    Errors use the API's shape: 404 ``invalid_login`` or ``unknown_report``,
    400 ``invalid_range``.
    """
    try:
        login = normalize_login(login)
    except ValueError as e:
        raise ApiError("invalid_login", str(e), 404) from e
    if name not in PANEL_REPORTS:
        message = f"no report named {name!r}; known: {known_reports()}"
        raise ApiError("unknown_report", message, 404)
    try:
        span = read_range(request.args)
    except RangeError as e:
        raise ApiError("invalid_range", str(e)) from e

    report = load_reports()[name]
    result = run_for(report, login, span)
    return jsonify(
        report=name,
        version=report.version,
        streamer=login,
        since=span.since,
        until=span.until,
        columns=result.columns,
        rows=result.as_dicts(),
    )


def page_login(raw: str) -> str:
    """Return the login, or abort with a 404 page that states the rule."""
    try:
        return normalize_login(raw)
    except ValueError as e:
        abort(404, description=f"No such stats page: {e}.")


def read_range(args) -> Range:
    """Read ``since`` and ``until`` from the query string; empty means open."""
    since = read_day(args.get("since"), "since")
    until = read_day(args.get("until"), "until")
    if since and until and since > until:
        raise RangeError(f"since ({since}) must not be after until ({until})")
    return Range(since, until)


def read_day(raw: str | None, name: str) -> str | None:
    if not raw:
        return None
    message = f"{name} must be {DATE_RULE}; got {raw!r}"
    if not ISO_DAY.fullmatch(raw):
        raise RangeError(message)

    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError as e:
        raise RangeError(message) from e


def as_sentence(e: Exception) -> str:
    text = str(e)
    return f"{text[:1].upper()}{text[1:]}."


def known_reports() -> str:
    return ", ".join(panel.report for panel in PANELS)


def run_for(report: Report, login: str, span: Range) -> Result:
    values = {"streamer": login, "since": span.since, "until": span.until}
    return run_report(db.session, report, values)


def range_slug(span: Range) -> str:
    """Name the range in a file name: ``2026-03-14-to-2026-03-15``, ``all-time``."""
    if span.since and span.until:
        return f"{span.since}-to-{span.until}"
    if span.since:
        return f"from-{span.since}"
    if span.until:
        return f"until-{span.until}"
    return "all-time"


def to_csv(result: Result) -> str:
    """Write a header line and the rows, RFC 4180 style (CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(result.columns)
    writer.writerows([defuse(value) for value in row] for row in result.rows)
    return buffer.getvalue()


def defuse(value: Any) -> Any:
    """Quote text that a spreadsheet would otherwise run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def build_panel(
    panel: Panel, reports: dict[str, Report], login: str, span: Range
) -> dict[str, Any]:
    """Run the panel's report and shape it for the template and stats.js."""
    result = run_for(reports[panel.report], login, span)
    query = {"login": login, "name": panel.report, **present(span)}
    return {
        "panel": panel,
        "chart": shape_chart(panel.report, result, span) if result.rows else None,
        "csv_url": url_for("stats.report_csv", **query),
        "json_url": url_for("stats.report_json", **query),
    }


def present(span: Range) -> dict[str, str]:
    return {key: value for key, value in vars(span).items() if value}


def render_stats(
    login: str, span: Range | None, panels: list, error: str | None
) -> str:
    return render_template(
        "stats/stats.html",
        login=login,
        span=span,
        panels=panels,
        presets=preset_links(login, span),
        error=error,
        typed=request.args,
    )


def preset_links(login: str, span: Range | None) -> list[dict[str, Any]]:
    """The quick ranges (last 7, 30, 90 days, all time), marking the current one."""
    today = datetime.now(UTC).date()
    links = []
    for days in PRESET_DAYS:
        since = (today - timedelta(days=days - 1)).isoformat()
        preset = Range(since, today.isoformat())
        links.append(preset_link(f"Last {days} days", login, preset, span))
    links.append(preset_link("All time", login, Range(None, None), span))
    return links


def preset_link(
    label: str, login: str, preset: Range, span: Range | None
) -> dict[str, Any]:
    url = url_for("stats.stats", login=login, **present(preset))
    return {"label": label, "url": url, "current": preset == span}


def shape_chart(name: str, result: Result, span: Range) -> dict[str, Any]:
    """Turn a report's rows into labels and datasets for stats.js."""
    rows = result.as_dicts()
    if name == "events-by-day":
        return chart_events_by_day(rows, span)
    if name == "follows-by-day":
        return chart_follows_by_day(rows, span)
    if name == "top-gifters":
        return chart_ranking(rows, "gifted_subs", "Gifted subs")
    return chart_ranking(rows, "bits", "Bits")


def chart_events_by_day(rows: list[dict], span: Range) -> dict[str, Any]:
    """One stacked bar per day, one colour per group of the watch page.

    Forty-odd types in one legend cannot be told apart, so the chart sums
    them by the groups the feed's filters use ("Subscriptions", "Bits", ...);
    the CSV and JSON downloads keep one row per type.
    """
    days = fill_days([row["day"] for row in rows], span)
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        by_day = counts.setdefault(group_label(row["event_type"]), {})
        by_day[row["day"]] = by_day.get(row["day"], 0) + row["count_all"]

    order = [*GROUPS.values(), OTHER_GROUP]
    datasets = [
        {"label": label, "data": [counts[label].get(d, 0) for d in days]}
        for label in order
        if label in counts
    ]
    return {"kind": "daily", "stacked": True, "labels": days, "datasets": datasets}


def chart_follows_by_day(rows: list[dict], span: Range) -> dict[str, Any]:
    """Bars of new followers per day under a line of the running total."""
    days = fill_days([row["day"] for row in rows], span)
    by_day = {row["day"]: row for row in rows}
    follows, totals, total = [], [], 0
    for day in days:
        row = by_day.get(day)
        total = row["running_total"] if row else total
        follows.append(row["follows"] if row else 0)
        totals.append(total)

    datasets = [
        {"label": "New followers", "data": follows},
        {"label": "Running total", "data": totals, "line": True},
    ]
    return {"kind": "daily", "stacked": False, "labels": days, "datasets": datasets}


def chart_ranking(rows: list[dict], column: str, label: str) -> dict[str, Any]:
    """Horizontal bars, biggest supporter first, as the report orders them."""
    return {
        "kind": "ranking",
        "labels": [row["supporter"] for row in rows],
        "datasets": [{"label": label, "data": [row[column] for row in rows]}],
    }


def fill_days(seen: list[str], span: Range) -> list[str]:
    """Every day from the range's start to its end, so quiet days show as 0.

    An open end stops at the first or last day with data; days with data
    too far apart to fill are listed alone.
    """
    first = date.fromisoformat(span.since or min(seen))
    last = date.fromisoformat(span.until or max(seen))
    if (last - first).days > MAX_FILLED_DAYS:
        first, last = date.fromisoformat(min(seen)), date.fromisoformat(max(seen))
    if (last - first).days > MAX_FILLED_DAYS:
        # Events dated years apart (Twitch's times are whatever the body says).
        return sorted(set(seen))
    count = (last - first).days + 1
    return [(first + timedelta(days=n)).isoformat() for n in range(count)]


OTHER_GROUP = "Other types"


def group_label(event_type: str) -> str:
    """The heading the watch page files ``event_type`` under."""
    feed_type = find_feed_type(event_type)
    return GROUPS[feed_type.group] if feed_type else OTHER_GROUP
