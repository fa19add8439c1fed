"""Agent-owned background jobs: things that outlive one request but never the agent or their deadline.

An iperf3 server waits for the client's request; a kept pcap waits for the controller to fetch it; a link
made by `link-setup` lives until teardown or its lifetime. Each job has an absolute deadline, at which a
watchdog ends it: the process group is killed, the job's cleanup runs, its temp folder is removed. The
runtime ends every job when the agent stops. Processes are also wrapped in coreutils `timeout`, so even an
agent killed with SIGKILL cannot leave them running past their lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steth.agent.errors import CouldNotRun, ToolMissing, TooManyJobs
from steth.agent.procs import die_with_agent, in_netns, kill_group

log = logging.getLogger("steth.agent.jobs")

# More live jobs than this on one agent is a runaway controller, not a use case.
MAX_JOBS = 64
# In every job folder: the pid of the agent that owns it. A folder whose agent is gone (killed with
# SIGKILL: its tools die with it, but nobody removed the folder) is removed by the next agent that starts.
OWNER_FILE = ".steth-agent-pid"


@dataclass
class Job:
    id: str
    kind: str  # "iperf-server", "capture", "link"
    deadline: float  # absolute, seconds since the epoch
    directory: Path | None = None
    proc: asyncio.subprocess.Process | None = None
    cleanup: Callable[[], Awaitable[None]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    end_on_exit: bool = False  # the job is its process: end it (and remove its folder) once the process exits
    ended: bool = False
    _watchdog: asyncio.Task | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class JobTable:
    """One per agent runtime; probes reach it through `jobs_of(ctx)`."""

    def __init__(self, max_jobs: int = MAX_JOBS, base_dir: str | None = None, sweep: bool = True):
        self.max_jobs = max_jobs
        self.base_dir = base_dir  # None: the system temp folder
        self._jobs: dict[str, Job] = {}
        if sweep:
            sweep_orphans(base_dir)

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str, kind: str | None = None) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and (kind is None or job.kind == kind) else None

    def of_kind(self, kind: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.kind == kind]

    def add(
        self,
        kind: str,
        lifetime_s: float,
        *,
        directory: bool = False,
        cleanup: Callable[[], Awaitable[None]] | None = None,
        info: dict[str, Any] | None = None,
        end_on_exit: bool = False,
    ) -> Job:
        """Register a job ending at now + lifetime_s; with directory=True it owns a fresh 0700 temp folder."""
        if len(self._jobs) >= self.max_jobs:
            raise TooManyJobs(f"this agent already runs {len(self._jobs)} background jobs (limit {self.max_jobs})")
        job_id = secrets.token_hex(8)
        job = Job(
            job_id, kind, time.time() + lifetime_s, cleanup=cleanup, info=dict(info or {}), end_on_exit=end_on_exit
        )
        if directory:
            job.directory = Path(tempfile.mkdtemp(prefix=f"steth-{kind}-{job_id}-", dir=self.base_dir))
            (job.directory / OWNER_FILE).write_text(str(os.getpid()))
        self._jobs[job_id] = job
        job._watchdog = asyncio.get_running_loop().create_task(self._watch(job))
        return job

    async def spawn(self, job: Job, argv: list[str], *, netns: str | None = None, output: str | None = None) -> None:
        """Start argv for this job in its own process group, bounded by the job's deadline.

        stdout and stderr go to `output` (a file name in the job's folder) or nowhere: nothing reads a pipe
        that could fill up and block the tool.
        """
        lifetime = max(1, int(job.deadline - time.time() + 0.999))
        if shutil.which("timeout"):  # a second bound that holds even if this agent dies
            argv = ["timeout", "--kill-after=2", str(lifetime), *argv]
        argv = in_netns(netns, argv)
        sink: Any = asyncio.subprocess.DEVNULL
        if output is not None:
            if job.directory is None:
                raise ValueError("a job writing output needs a directory")
            sink = open(job.directory / output, "wb")
        try:
            job.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                start_new_session=True,
                preexec_fn=die_with_agent(signal.SIGTERM),  # SIGTERM: `timeout` passes it on to the tool
            )
        except FileNotFoundError:
            raise ToolMissing(f"{argv[0]} is not installed") from None
        except PermissionError:
            raise ToolMissing(f"{argv[0]} cannot be run: permission denied") from None
        finally:
            if output is not None:
                sink.close()  # the child holds its own copy
        job.info["pid"] = job.proc.pid

    async def signal(self, job: Job, sig: int) -> None:
        """Send a signal to the job's whole process group (SIGINT lets tcpdump finish its file)."""
        if job.running:
            try:
                os.killpg(job.proc.pid, sig)
            except ProcessLookupError:
                pass

    async def end(self, job_id: str) -> Job | None:
        """Kill the job's processes, run its cleanup, remove its folder. Safe to call twice."""
        job = self._jobs.pop(job_id, None)
        if job is None or job.ended:
            return job
        job.ended = True
        try:
            await asyncio.shield(self._teardown(job))
        finally:
            if job._watchdog is not None and job._watchdog is not asyncio.current_task():
                job._watchdog.cancel()
        return job

    async def close(self) -> None:
        """End every job (the agent is stopping)."""
        if self._jobs:
            log.info("ending %d background job(s)", len(self._jobs))
        await asyncio.gather(*(self.end(job_id) for job_id in list(self._jobs)), return_exceptions=True)

    async def _teardown(self, job: Job) -> None:
        if job.proc is not None:
            if job.proc.returncode is None:
                await kill_group(job.proc)
            else:
                try:  # the tool exited, but a child it left in the group must not outlive the job
                    os.killpg(job.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if job.cleanup is not None:
            try:
                await job.cleanup()
            except Exception as exc:
                log.warning("cleanup of %s job %s failed: %s", job.kind, job.id, exc)
        if job.directory is not None:
            shutil.rmtree(job.directory, ignore_errors=True)

    async def _watch(self, job: Job) -> None:
        """End the job at its deadline; a job whose only purpose was a process ends when it exits."""
        try:
            while not job.ended:
                remaining = job.deadline - time.time()
                if remaining <= 0:
                    log.info("%s job %s reached its deadline", job.kind, job.id)
                    break
                if job.proc is not None and job.proc.returncode is None and job.end_on_exit:
                    try:
                        await asyncio.wait_for(job.proc.wait(), timeout=remaining)
                        break
                    except TimeoutError:
                        continue
                if job.proc is not None and job.end_on_exit and job.proc.returncode is not None:
                    break
                await asyncio.sleep(min(remaining, 1.0))
        except asyncio.CancelledError:
            return
        await self.end(job.id)


def _alive(pid: int) -> bool:
    """Running (a zombie is not: it has died and waits only for its parent to read its status)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_orphans(base_dir: str | None = None) -> int:
    """Remove job folders whose owning agent no longer runs; the number removed."""
    removed = 0
    for folder in Path(base_dir or tempfile.gettempdir()).glob("steth-*-*-*"):
        try:
            pid = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a job folder (or not ours to judge)
        if _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def jobs_of(ctx: Any) -> JobTable:
    """The job table of the runtime that runs this probe."""
    table = getattr(ctx, "extra", {}).get("jobs")
    if table is None:
        raise CouldNotRun("this agent runtime offers no background jobs")
    return table


async def wait_for_text(path: Path, needles: tuple[str, ...], job: Job, timeout: float) -> str:
    """Poll a job's output file until one of needles shows up, the process exits, or timeout; the text so far."""
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        if any(n in text for n in needles) or not job.running or time.monotonic() >= deadline:
            return text
        await asyncio.sleep(0.02)
