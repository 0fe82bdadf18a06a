"""The exception hierarchy: one line each, and the exit code the CLI returns for it."""

from appliance.errors import ApplianceError, BootError, Interrupted, TemplateError, ToolFailed, ToolTimedOut


def test_a_failed_tool_says_its_name_status_and_last_line_of_output():
    failed = ToolFailed(["mkfs.ext4", "-q", "disk.img"], 1, "mke2fs 1.47\nmkfs.ext4: Device size reported to be zero\n")
    assert str(failed) == "mkfs.ext4 failed with exit code 1: mkfs.ext4: Device size reported to be zero"
    assert str(ToolFailed(["true"], 2, "")) == "true failed with exit code 2: (no output)"


def test_a_timed_out_tool_is_a_failed_one_that_says_its_deadline():
    late = ToolTimedOut(["qemu-img", "convert"], 2.5)
    assert isinstance(late, ToolFailed) and late.timeout == 2.5 and late.returncode == -1
    assert str(late) == "qemu-img failed with exit code -1: timed out after 2.5 s"


def test_exit_codes_tell_a_failed_boot_and_an_interrupt_from_other_failures():
    assert ApplianceError("x").exit_code == TemplateError("x").exit_code == 1
    boot = BootError("guest did not finish", console_tail="Kernel panic")
    assert boot.exit_code == 3 and boot.console_tail == "Kernel panic"
    assert Interrupted("stopped").exit_code == 130
