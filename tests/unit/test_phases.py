"""Phases from a boot's events: each from the first present of its start probes to the
first present of its end probes, a missing probe leaving its phase missing."""

from appliance.phases import EXEC, EXIT, READY, derive
from appliance.probes import Event


def ms(name: str, t: float) -> Event:
    return Event(name, int(t * 1e6), "trace")


def test_phases_from_a_full_run():
    events = [ms(EXEC, 0), ms("fw_entry", 30), ms("kernel_entry", 40), ms("init_start", 4040),
              ms("payload_start", 4046), ms("payload_end", 4070), ms(EXIT, 4100)]
    p = derive(events)
    assert p == {"qemu": 30.0, "firmware": 10.0, "kernel": 4000.0, "init": 6.0, "payload": 24.0,
                 "modules": None, "root": None, "fw_setup": None, "fw_load": None, "to_init": 4040.0,
                 "total": 4100.0, "k_decomp": None, "k_init": None, "k_exec": None,
                 "service_ready": None, "service": None, "restore": None, "after_restore": None,
                 "initrd": None, "sysinit": None, "basic": None, "multi_user": None, "userspace": None,
                 "to_multi_user": None, "bootloader": None, "k_efi": None,
                 "to_systemd": None}


def test_phases_of_an_image_booted_by_its_own_init():
    """Our init's part up to the exec, systemd's targets one after another, its end,
    and a service answering on the host before multi-user.target."""
    events = [ms(EXEC, 0), ms("fw_entry", 30), ms("kernel_entry", 40), ms("init_start", 3000),
              ms("image_init", 3130), ms("sysinit_target", 7800), ms("basic_target", 7950),
              ms(READY, 9000), ms("multi_user_target", 10900), ms("systemd_finished", 11400), ms(EXIT, 16000)]
    p = derive(events)
    assert (p["initrd"], p["sysinit"], p["basic"], p["multi_user"]) == (130.0, 4670.0, 150.0, 2950.0)
    assert (p["userspace"], p["to_multi_user"], p["service"], p["service_ready"]) == (8270.0, 10900.0, 5870.0, 9000.0)
    assert p["init"] is None and p["payload"] is None


def test_a_restores_phases_run_from_launch_to_the_resume_and_on_to_the_payloads_end():
    from appliance.phases import RESUMED

    events = [ms(EXEC, 0), ms(RESUMED, 120), ms("work_done", 190), ms("payload_end", 205), ms(EXIT, 240)]
    p = derive(events)
    assert (p["restore"], p["after_restore"], p["total"]) == (120.0, 85.0, 240.0)
    assert p["kernel"] is None and p["payload"] is None and p["to_init"] is None  # nothing a restore did not do


def test_service_phases_run_from_launch_and_from_payload_start_to_the_first_answer():
    events = [ms(EXEC, 0), ms("init_start", 4000), ms("payload_start", 4010), ms(READY, 4090),
              ms("payload_end", 4200), ms(EXIT, 4300)]
    p = derive(events)
    assert p["service_ready"] == 4090.0 and p["service"] == 80.0


def test_kernel_probes_split_the_kernel_phase():
    events = [ms(EXEC, 0), ms("linux_start_pvhboot", 30), ms("linux_start_kernel", 33), ms("linux_start_user", 580),
              ms("init_start", 597), ms(EXIT, 700)]
    p = derive(events)
    assert (p["kernel"], p["k_decomp"], p["k_init"], p["k_exec"]) == (567.0, 3.0, 547.0, 17.0)


def test_missing_probe_leaves_its_phase_missing_and_shifts_nothing():
    events = [ms(EXEC, 0), ms("fw_entry", 30), ms("kernel_entry", 40), ms("payload_start", 4046),
              ms("payload_end", 4070), ms(EXIT, 4100)]  # init_start lost
    p = derive(events)
    assert p["kernel"] is None and p["init"] is None and p["to_init"] is None
    assert p["payload"] == 24.0 and p["firmware"] == 10.0


def test_every_phase_has_its_line_in_the_table():
    from appliance.phases import PHASE_NAMES
    from appliance.runs.table import PHASE_HELP

    assert set(PHASE_HELP) == set(PHASE_NAMES)


MS = 1_000_000


def test_exit_channel_keeps_only_exec_anchored_phases():
    events = [Event(EXEC, 0, "host"), Event("init_start", 4500 * MS, "exit"), Event("payload_start", 4400 * MS, "exit")]
    phases = derive(events, anchored_only=True)
    assert phases["to_init"] == 4500.0 and phases["init"] is None and phases["kernel"] is None
