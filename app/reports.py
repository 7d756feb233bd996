"""Versioned reporting queries, loaded from ``sql/`` by name.

Each ``sql/<name>.sql`` holds one query with a header of ``-- key: value``
lines: ``name``, ``version``, ``answers`` and ``parameters`` (a comma-separated
list; ``(required)`` marks the ones that must be given). A report that reads
the daily rollups may have ``sql/<name>.exact.sql`` beside it, which
recounts the same thing from the raw events. Every query runs unchanged on
SQLite and PostgreSQL; parameters are bound by name.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

SQL_FOLDER = Path(__file__).resolve().parent.parent / "sql"
HEADER = re.compile(r"--\s*(\w+):\s*(.*)")
PARAMETERS = ("since", "until", "streamer")
HEADER_KEYS = {"name", "version", "answers", "parameters"}
# The since and until days of a report, as the CLI and the stats page take them.
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# Rollups and raw events disagree where this query finds a difference.
ROLLUP_DIFFERENCES = """
WITH counted AS (
  SELECT COALESCE(streamer_name, '') AS streamer_name, event_type,
         SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) AS day,
         COUNT(*) AS count_all
  FROM events
  GROUP BY 1, 2, 3
)
SELECT c.streamer_name, c.event_type, c.day,
       c.count_all AS counted, COALESCE(r.count, 0) AS rolled_up
FROM counted AS c
LEFT JOIN event_counts AS r
  ON r.streamer_name = c.streamer_name
 AND r.event_type = c.event_type
 AND r.day = c.day
WHERE r.count IS NULL OR r.count <> c.count_all
UNION ALL
SELECT r.streamer_name, r.event_type, r.day, 0, r.count
FROM event_counts AS r
LEFT JOIN counted AS c
  ON c.streamer_name = r.streamer_name
 AND c.event_type = r.event_type
 AND c.day = r.day
WHERE c.count_all IS NULL AND r.count <> 0
ORDER BY 1, 2, 3
"""


class ReportError(Exception):
    """A report that cannot be run as asked; the message says what to change."""


@dataclass(frozen=True)
class Report:
    name: str
    version: str
    answers: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    query: str
    exact_query: str | None

    @property
    def reads_rollups(self) -> bool:
        return self.exact_query is not None


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def load_reports(folder: Path = SQL_FOLDER) -> dict[str, Report]:
    """Read every report in ``folder``, keyed by name, in name order."""
    exact = {
        path.name.removesuffix(".exact.sql"): path.read_text(encoding="utf-8")
        for path in folder.glob("*.exact.sql")
    }
    reports = {}
    for path in sorted(folder.glob("*.sql")):
        if path.name.endswith(".exact.sql"):
            continue
        report = parse_report(path, exact.get(path.stem))
        reports[report.name] = report
    return reports


def parse_report(path: Path, exact_query: str | None) -> Report:
    """Read one query file and its header; raise ``ReportError`` if malformed."""
    query = path.read_text(encoding="utf-8")
    header = {}
    for line in query.splitlines():
        match = HEADER.fullmatch(line.strip())
        if not match:
            break
        header[match[1]] = match[2].strip()

    missing = HEADER_KEYS - header.keys()
    if missing or header["name"] != path.stem:
        raise ReportError(
            f"{path.name}: header needs {sorted(HEADER_KEYS)}, "
            "with name equal to the file name"
        )
    required, optional = parse_parameters(header["parameters"])
    return Report(
        header["name"],
        header["version"],
        header["answers"],
        required,
        optional,
        query,
        exact_query,
    )


def parse_parameters(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    required, optional = [], []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name = item.removesuffix("(required)").strip()
        (required if item.endswith("(required)") else optional).append(name)
    return tuple(required), tuple(optional)


def run_report(
    session: so.Session,
    report: Report,
    values: dict[str, str | None],
    exact: bool = False,
) -> Result:
    """Run a report with ``since``, ``until`` and ``streamer`` values.

    ``exact`` recounts from the raw events when the report reads rollups.
    Raises ``ReportError`` when a required parameter is missing.
    """
    for name in report.required:
        if not values.get(name):
            raise ReportError(f"report {report.name} needs --{name}")

    query = report.exact_query if exact and report.exact_query else report.query
    params = {name: values.get(name) for name in PARAMETERS}
    result = session.execute(sa.text(query), params)
    return Result(list(result.keys()), [tuple(row) for row in result])


def find_rollup_differences(session: so.Session) -> Result:
    """List every streamer, type and day where rollups and raw counts differ."""
    result = session.execute(sa.text(ROLLUP_DIFFERENCES))
    return Result(list(result.keys()), [tuple(row) for row in result])
