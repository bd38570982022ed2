"""Errors of the kit's own guest: one line each, naming what is missing and how to get it."""
from __future__ import annotations

APT_PACKAGES = ("qemu-system-x86", "busybox-static", "linux-image-amd64", "gcc", "libc6-dev", "e2fsprogs")
INSTALL_HINT = ("run `bash ci/setup-vm` as root, or: apt-get update && apt-get install -y "
                "--no-install-recommends " + " ".join(APT_PACKAGES))


class VmError(RuntimeError):
    """Something about the kit's QEMU guest went wrong; the message says what to do."""


class VmSetupError(VmError):
    """A build input (QEMU, kernel, modules, busybox, compiler, mkfs) is missing or unusable."""

    def __init__(self, what: str, package: str | None = None):
        hint = f"install it: apt-get install -y --no-install-recommends {package}" if package else INSTALL_HINT
        super().__init__(f"{what}; {hint}")
        self.package = package


class VmBootError(VmError):
    """QEMU started but the guest agent never said hello (or QEMU exited)."""


class VmProtocolError(VmError):
    """A line from the guest agent is not in the protocol (see agent.c)."""


class VmCommandError(VmError):
    """The guest agent ran a command and reported failure."""
