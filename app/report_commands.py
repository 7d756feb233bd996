"""``cli.py report`` and ``cli.py check-rollups``: counts for operators."""

import csv
import json
import sys
from datetime import date

import click
from tabulate import tabulate

from app.logins import normalize_login
from app.reports import ISO_DAY
from app.reports import Report
from app.reports import ReportError
from app.reports import Result
from app.reports import find_rollup_differences
from app.reports import load_reports
from app.reports import run_report

DATE_RULE = "a date YYYY-MM-DD such as 2026-03-14 (days are UTC, both ends included)"


def check_date(ctx, param, value: str | None) -> str | None:
    """Accept an ISO date and hand it on as YYYY-MM-DD."""
    if value is None:
        return None
    message = f"must be {DATE_RULE}; got {value!r}"
    if not ISO_DAY.fullmatch(value):
        raise click.BadParameter(message)
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as e:
        raise click.BadParameter(message) from e


def check_login(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_login(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def check_name(ctx, param, value: str | None) -> Report | None:
    """Turn a report name into the report, listing the known names if unknown."""
    if value is None:
        return None
    reports = load_reports()
    if value not in reports:
        known = ", ".join(reports)
        raise click.BadParameter(f"no report named {value!r}; known: {known}")
    return reports[value]


@click.command()
@click.argument("report", metavar="NAME", required=False, callback=check_name)
@click.option("--list", "show_list", is_flag=True, help="List the reports and exit.")
@click.option("--since", callback=check_date, help=f"First day, {DATE_RULE}.")
@click.option("--until", callback=check_date, help="Last day, an ISO date.")
@click.option("--streamer", callback=check_login, help="Streamer login.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the rows.",
)
@click.option(
    "--exact", is_flag=True, help="Recount from raw events instead of rollups."
)
def report(report, show_list, since, until, streamer, output, exact):
    """Print the report NAME (a query in sql/); --list shows them all."""
    from cli import app_context

    if show_list:
        print_report_list()
        return
    if report is None:
        raise click.UsageError("Missing argument 'NAME'; --list shows the reports.")
    if since and until and since > until:
        # ISO dates compare as text; the stats page refuses the same range.
        raise click.BadParameter(
            f"must not be after --until ({until}); got {since}", param_hint="'--since'"
        )

    values = {"since": since, "until": until, "streamer": streamer}
    with app_context() as session:
        try:
            result = run_report(session, report, values, exact=exact)
        except ReportError as e:
            raise click.UsageError(str(e)) from e
    print_result(result, output)


def print_report_list() -> None:
    for report in load_reports().values():
        source = "rollups, --exact for raw" if report.reads_rollups else "raw events"
        click.echo(f"{report.name} v{report.version} ({source}): {report.answers}")


def print_result(result: Result, output: str) -> None:
    """Write rows as an aligned table, CSV or JSON to standard output."""
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif output == "json":
        click.echo(json.dumps(result.as_dicts(), indent=2, ensure_ascii=False))
    else:
        click.echo(tabulate(result.rows, headers=result.columns))


@click.command("check-rollups")
def check_rollups() -> None:
    """Compare the daily rollups with a recount of raw events; exit 1 if apart."""
    from cli import app_context

    with app_context() as session:
        differences = find_rollup_differences(session)
    if not differences.rows:
        click.echo("Rollups match the raw events.")
        return

    click.echo(tabulate(differences.rows, headers=differences.columns))
    raise click.ClickException(f"{len(differences.rows)} rollup counts differ")
