"""The real-kernel harness's calibrated timeouts (tests/realkernel/speed.py, vm.Watchdog); no boot."""
from tests.realkernel import speed, vm


def test_allowance_scales_with_the_measured_unit():
    # three times slower machine, three times longer allowance; the safety factor on top
    assert speed.allowance(100, unit_s=0.5) == 100 * 0.5 * speed.SAFETY
    assert speed.allowance(100, unit_s=1.5) == 3 * speed.allowance(100, unit_s=0.5)


def test_measure_times_the_work_and_grows_with_it():
    small = speed.measure(runs=3, iterations=20_000)
    big = speed.measure(runs=3, iterations=400_000)
    assert 0 < small < big


def test_announcements_are_new_content_each_time(tmp_path):
    budget = tmp_path / "budget"
    speed.announce(12.5, path=str(budget))
    first = speed.read_announcement(budget)
    speed.announce(12.5, path=str(budget))
    second = speed.read_announcement(budget)
    assert first[1] == second[1] == 12.5
    assert first[0] != second[0]  # the same allowance again is still progress
    assert speed.read_announcement(tmp_path / "absent") is None
    (tmp_path / "torn").write_text("123")
    assert speed.read_announcement(tmp_path / "torn") is None
    speed.announce(5, path=str(tmp_path / "no-such-dir" / "budget"))  # outside the harness: nobody watches
    assert not (tmp_path / "no-such-dir").exists()


def test_watchdog_allows_the_boot_then_each_announced_step():
    dog = vm.Watchdog(boot_allowance=60, cap=None, started=0.0)
    assert not dog.expired(None, 59)
    assert dog.expired(None, 61) and "the boot was allowed 60 s" in dog.reason
    dog = vm.Watchdog(boot_allowance=60, cap=None, started=0.0)
    assert not dog.expired(("t1", 500.0), 50)      # first step announced at t=50 with 500 s
    assert not dog.expired(("t1", 500.0), 549)     # the same announcement is no progress ...
    assert dog.expired(("t1", 500.0), 551)         # ... and its allowance ran out
    assert "no progress for 501 s: a step was allowed 500 s" in dog.reason


def test_watchdog_new_announcement_is_progress_and_the_cap_still_holds():
    dog = vm.Watchdog(boot_allowance=60, cap=1000, started=0.0)
    for now in range(50, 1000, 100):                # a new step every 100 s: never stalls
        assert not dog.expired((f"t{now}", 150.0), now)
    assert dog.expired(("t-last", 150.0), 1001)
    assert "did not finish within 1000 s (HOSTDEV_VM_TIMEOUT)" in dog.reason
