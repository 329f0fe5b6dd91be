"""Does the order tasks arrive in change what a method gains? All orderings (or a seeded sample)
of the config's tasks x methods x seeds, one Ray Tune trial each; one results table per sweep.

    python experiments/task_order.py --smoke-test   # = cl-sim sweep task_order --smoke-test; tiny model: seconds
    python experiments/task_order.py                                # MiniLM, 2 CPU cores: minutes
    python experiments/task_order.py --sample 4 sweep.methods=[st_a,fusion] training.epochs=2
    python experiments/task_order.py sweep.sample=null sweep.seeds=[0,1]    # all orderings, 2 seeds
    python experiments/task_order.py --address auto                 # a running `ray start` cluster
    RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265 \\
        ray job submit --working-dir . -- python experiments/task_order.py --smoke-test

Results: <output.dir>/<sweep.name>/tasks.parquet (one row per trial x task), matrix.parquet,
phases.parquet (wall times), trials.parquet, counts.json (phases trained / reused), report.md.
Rerunning after a kill reuses every finished phase from the store (execution.store_dir).
"""
import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(__doc__, "task_order"))
