"""The exception hierarchy. The CLI turns any of these into one line and exit code."""

from __future__ import annotations


class ApplianceError(Exception):
    """A failure the user can act on: the message says what happened and what to do."""

    exit_code = 1


class TemplateError(ApplianceError):
    """A rootfs template is malformed or names something that does not exist."""


class ToolMissing(ApplianceError):
    """An external program is not installed."""


class ToolFailed(ApplianceError):
    """An external program ran and failed."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1:] or ["(no output)"]
        super().__init__(f"{argv[0]} failed with exit code {returncode}: {tail[0]}")


class ToolTimedOut(ToolFailed):
    """An external program ran past its deadline and was killed."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.timeout = timeout
        super().__init__(argv, -1, f"timed out after {timeout:g} s")


class KernelError(ApplianceError):
    """The kernel could not be found, downloaded or verified."""


class BundleError(ApplianceError):
    """A bundle is missing files, or its files do not match bundle.json."""


class BootError(ApplianceError):
    """A guest did not boot to completion: hang, panic, crash or QEMU failure."""

    exit_code = 3

    def __init__(self, message: str, console_tail: str = "") -> None:
        self.console_tail = console_tail
        super().__init__(message)


class Interrupted(ApplianceError):
    """The user interrupted a run (Ctrl-C or SIGTERM)."""

    exit_code = 130
