"""The IREE flags each target compiles with: what wispy adds to IREE's defaults."""
from wispy.targets import Target


def _flag(flags, prefix):
    return [f for f in flags if f.startswith(prefix)]


def test_host_gets_larger_workgroup_tiles_and_keeps_user_features():
    flags = Target.parse("host", cpu_features="+avx2").iree_flags()
    assert _flag(flags, "--iree-llvmcpu-distribution-size=") == ["--iree-llvmcpu-distribution-size=1024"]
    features = _flag(flags, "--iree-llvmcpu-target-cpu-features=")
    assert len(features) == 1 and features[0].endswith(",+avx2")


def test_baseline_and_arm_builds_keep_irees_distribution():
    # "IREE without wispy" is the comparison baseline; Arm tiles were never timed on a phone.
    for target in (Target("host", tuned=False), Target.parse("arm64"), Target.parse("armv7")):
        assert not _flag(target.iree_flags(), "--iree-llvmcpu-distribution-size")


def test_arm64_and_host_builds_use_irees_microkernels():
    for target in (Target.parse("arm64"), Target.parse("host")):
        assert _flag(target.iree_flags(), "--iree-llvmcpu-enable-ukernels") == \
            ["--iree-llvmcpu-enable-ukernels=all"]
    # not IREE's own baseline builds, nor armv7 (whose microkernels are generic C)
    for target in (Target("arm64", tuned=False), Target("host", tuned=False), Target.parse("armv7")):
        assert not _flag(target.iree_flags(), "--iree-llvmcpu-enable-ukernels")
