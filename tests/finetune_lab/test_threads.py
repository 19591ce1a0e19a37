"""Threads per process under `accelerate launch` (finetune_lab/threads.py)."""

from finetune_lab.threads import LAUNCHER_MARKER, threads_per_process, threads_set_by_launcher, usable_cores

LAUNCHED = {LAUNCHER_MARKER: "NO", "OMP_NUM_THREADS": "1"}
LAUNCHER_ARGS = ["accelerate", "launch", "run.py", "--task", "ner"]


def test_accelerates_default_of_one_thread_is_recognised():
    assert threads_set_by_launcher(LAUNCHED, {"PATH": "/bin"}, LAUNCHER_ARGS)


def test_the_users_own_thread_count_is_left_alone():
    assert not threads_set_by_launcher(LAUNCHED, {"OMP_NUM_THREADS": "1"}, LAUNCHER_ARGS)  # exported by the user
    chosen = [*LAUNCHER_ARGS[:2], "--num_cpu_threads_per_process", "1", *LAUNCHER_ARGS[2:]]
    assert not threads_set_by_launcher(LAUNCHED, {}, chosen)
    assert not threads_set_by_launcher({"OMP_NUM_THREADS": "1"}, {}, ["bash"])  # not under accelerate
    assert not threads_set_by_launcher({**LAUNCHED, "OMP_NUM_THREADS": "3"}, {}, LAUNCHER_ARGS)
    assert not threads_set_by_launcher(LAUNCHED, None, None)  # cannot tell: leave it


def test_cores_are_shared_by_the_processes_of_one_machine():
    cores = usable_cores()
    assert threads_per_process({}) == cores
    assert threads_per_process({"LOCAL_WORLD_SIZE": "2"}) == max(cores // 2, 1)
    assert threads_per_process({"LOCAL_WORLD_SIZE": str(cores * 4)}) == 1
