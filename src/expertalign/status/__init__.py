"""Where a running or stopped campaign stands: ``expertalign status``.

    >>> from expertalign.status import main_status, campaign_status, format_status
    >>> print(main_status("config/paper.yaml"))                 # the table, failures, totals
    >>> report = campaign_status(Campaign(config), workdir=".")  # the same, as data
    >>> report.rows[0].counts, report.failed[0].error
    >>> print(format_status(report))

One row per rule at one (model, checkpoint), its jobs counted as done, running, queued, failed,
incomplete or todo, with the time spent and the time left; then the failed jobs with their log
and first error line, and the incomplete ones. Read-only: it never takes Snakemake's lock, so it
works while the controller runs and after it died.

- :mod:`expertalign.status.jobs` — the jobs a campaign consists of (outputs, logs, benchmarks),
  as the workflow's rules declare them, and the states a job can be in
- :mod:`expertalign.status.probes` — what it reads: ``.snakemake`` incomplete markers and locks,
  the controller's process, squeue and sacct, logs and benchmark TSVs
- :mod:`expertalign.status.report` — each job's state (what each state means), the rows and
  the estimate of the time left
- :mod:`expertalign.status.text` — the text the command prints
"""

from expertalign.status.jobs import STATES, Job, JobStatus, expected_jobs
from expertalign.status.probes import first_error_line, incomplete_markers
from expertalign.status.report import Row, StatusReport, campaign_status
from expertalign.status.text import format_status, main_status

__all__ = [
    "STATES",
    "Job",
    "JobStatus",
    "Row",
    "StatusReport",
    "expected_jobs",
    "campaign_status",
    "format_status",
    "main_status",
    "first_error_line",
    "incomplete_markers",
]
