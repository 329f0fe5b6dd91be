"""How many teachers does a new task need? teacher_count = 0 .. n-1 (0 = no teachers: the
method is ST-A) for I2I and AdapterDistillation on the config's ordering (or on a sample of
orderings with sweep.orderings=all sweep.sample=K), x seeds; one Ray Tune trial per setting.

    python experiments/teacher_count.py --smoke-test          # = cl-sim sweep teacher_count --smoke-test
    python experiments/teacher_count.py                              # MiniLM, 2 CPU cores: minutes
    python experiments/teacher_count.py method.teacher_selection=similar sweep.teacher_counts=[0,2]
    python experiments/teacher_count.py --address auto               # a running `ray start` cluster
    RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265 \\
        ray job submit --working-dir . -- python experiments/teacher_count.py --smoke-test

Results: <output.dir>/<sweep.name>/tasks.parquet (one row per trial x task, column teacher_count),
report.md with the teacher-count curves; phases trained / reused in counts.json.
"""
import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(__doc__, "teacher_count"))
