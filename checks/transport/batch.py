"""Several commands in one SSH channel: the script that runs them one after another, and the reader that splits
what comes back into one result per command (wt-perf).

Why: every command of the checklist's round was its own channel, session, login shell and `timeout` on the
target; twenty of them at once compete for the target's CPU with the slowest command of the round (`pm2 jlist`,
node starting PM2's client). Measured on the sandbox (2 cores): `pm2 jlist` took 109 ms alone, 156 ms next to
the fourteen other commands of the first round on their own channels, 116 ms next to the same fourteen run one
after another in one channel (bench/RESULTS.md, "wt-perf").

The script is built from the same argv lists as single commands, each shlex-quoted and under its own `timeout`
(checks.transport.ssh.remote_argv), so sudo and the sudoers allow-list see exactly the same commands. Each
command's stdout is followed by `\\n<nonce> <index> <exit status>\\n`, its stderr by `\\n<nonce> <index>\\n`;
the nonce is random per batch, so no output (a log line, a config file) can fake a boundary.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_NONCE = re.compile(r"[0-9a-f]{24}")


#: Below the app on the target's CPU. `renice` alone does nothing where the kernel groups tasks by session
#: (CONFIG_SCHED_AUTOGROUP, on by default in Debian's and Ubuntu's kernels): every SSH channel is a session of its
#: own (sshd calls setsid), so its group competes with the app's as an equal, whatever the nice of the tasks in it.
#: The group's own nice is the channel's alone to lower (sched(7), "The autogroup feature"); measured on the
#: sandbox, bench/RESULTS.md "Where the ratio's floor is". Run only as an SSH channel's command (never in the
#: caller's own session: it would lower that session's group).
RENICE = "{ echo 19 >/proc/self/autogroup; } 2>/dev/null; renice -n 10 -p $$ >/dev/null 2>&1"


def new_nonce() -> str:
    return secrets.token_hex(12)


def batch_script(commands: Sequence[str], nonce: str) -> str:
    """A POSIX sh script running the (already quoted) `commands` in order, each followed by its markers."""
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 24 hex digits")
    # Below the app and `pm2 jlist` on the target's CPU (RENICE): these reads only need to end before jlist does,
    # and a diagnosis should not take CPU from the app it diagnoses. Where renice or the autogroup file is missing
    # or refused, nothing changes.
    lines = [RENICE]
    for i, command in enumerate(commands):
        lines.append(f"{command}; printf '\\n{nonce} {i} %d\\n' \"$?\"; printf '\\n{nonce} {i}\\n' >&2")
    return "\n".join(lines)


def split_script(script: str) -> tuple[str, list[list[str]]]:
    """The nonce and the argv of each command of a `batch_script` (for the bench's simulated targets and tests)."""
    nonce = ""
    argvs: list[list[str]] = []
    for line in script.splitlines():
        if line == RENICE:
            continue
        command, sep, rest = line.partition("; printf '\\n")
        if not sep:
            raise ValueError("not a batch script line")
        nonce = rest.split(" ", 1)[0]
        argvs.append(shlex.split(command))
    return nonce, argvs


def batch_outputs(nonce: str, results: Sequence[tuple[int, str, str]]) -> tuple[str, str]:
    """The (stdout, stderr) that `batch_script` prints for commands that gave `results` (status, out, err)."""
    out = "".join(f"{o}\n{nonce} {i} {s}\n" for i, (s, o, _e) in enumerate(results))
    err = "".join(f"{e}\n{nonce} {i}\n" for i, (_s, _o, e) in enumerate(results))
    return out, err


@dataclass
class _Stream:
    """One of the two streams: the text not yet split, and the sections found so far (text, status).

    Chunks are kept in a list and joined only when a marker may be in them: `nginx -T` can be megabytes, and
    growing one string chunk by chunk would copy it over and over."""

    marker: str
    with_status: bool
    parts: list[str] = field(default_factory=list)
    tail: str = ""
    sections: list[tuple[str, int | None]] = field(default_factory=list)

    def feed(self, text: str) -> None:
        window = self.tail + text
        self.parts.append(text)
        keep = len(self.marker) + 32
        self.tail = window[-keep:]
        if self.marker not in window:
            return
        buffer = "".join(self.parts)
        while True:
            at = buffer.find(self.marker)
            end = buffer.find("\n", at + len(self.marker)) if at >= 0 else -1
            if end < 0:
                break
            words = buffer[at + len(self.marker):end].split()
            index = len(self.sections)
            if not words or words[0] != str(index) or len(words) != (2 if self.with_status else 1) or \
                    (self.with_status and not words[1].lstrip("-").isdigit()):
                raise ValueError(f"unexpected batch marker for command {index}")
            self.sections.append((buffer[:at], int(words[1]) if self.with_status else None))
            buffer = buffer[end + 1:]
        self.parts = [buffer] if buffer else []
        self.tail = buffer[-keep:]


class BatchReader:
    """Splits a batch's stdout and stderr, fed in chunks as they arrive, into per-command results."""

    def __init__(self, nonce: str, count: int, on_done: Callable[[int, int, str, str], None]) -> None:
        self.count = count
        self._out = _Stream(f"\n{nonce} ", with_status=True)
        self._err = _Stream(f"\n{nonce} ", with_status=False)
        self._on_done = on_done
        self.done = 0

    def feed_stdout(self, text: str) -> None:
        self._out.feed(text)
        self._deliver()

    def feed_stderr(self, text: str) -> None:
        self._err.feed(text)
        self._deliver()

    def _deliver(self) -> None:
        while self.done < min(len(self._out.sections), len(self._err.sections)):
            i = self.done
            out, status = self._out.sections[i]
            err, _ = self._err.sections[i]
            self.done += 1
            self._on_done(i, status if status is not None else -1, out, err)

    @property
    def complete(self) -> bool:
        return self.done >= self.count
