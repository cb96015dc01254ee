"""The embedded server's system user (root only): created once, however many processes start a
server at the same moment (test workers do, on a machine that has never run one)."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest

from afilo_db.db.embedded import system_user

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="creating a system user needs root and useradd",
)

PROCESSES = 8


@pytest.fixture
def new_user_name() -> Iterator[str]:
    name = f"afilo_race_{os.getpid()}"
    yield name
    subprocess.run(["userdel", name], capture_output=True)


def _create_when_all_are_ready(
    name: str, ready: Barrier, uids: multiprocessing.Queue[int | str]
) -> None:
    ready.wait()
    try:
        uids.put(system_user(name).pw_uid)
    except Exception as error:
        uids.put(repr(error))


def test_processes_asking_at_once_get_one_user(new_user_name: str) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(PROCESSES)
    uids: multiprocessing.Queue[int | str] = context.Queue()
    processes = [
        context.Process(target=_create_when_all_are_ready, args=(new_user_name, ready, uids))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    answers = [uids.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)

    assert answers == [pwd.getpwnam(new_user_name).pw_uid] * PROCESSES
    with open("/etc/passwd") as passwd:
        entries = [line for line in passwd if line.startswith(f"{new_user_name}:")]
    assert len(entries) == 1
