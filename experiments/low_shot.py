"""How little data do I2I's Improvise/Initialize phases need? low_shot_fraction x i2i_variant
(FF = full data in both, FL = full then low-shot, LL = low-shot in both; FF ignores the fraction
and is the flat reference line) on the config's ordering (or sweep.orderings=all sweep.sample=K),
x seeds; one Ray Tune trial per setting.

    python experiments/low_shot.py --smoke-test          # = cl-sim sweep low_shot --smoke-test
    python experiments/low_shot.py                                   # MiniLM, 2 CPU cores: minutes
    python experiments/low_shot.py sweep.low_shot_fractions=[0.05,0.1,0.5] sweep.i2i_variants=[FL,LL]
    python experiments/low_shot.py --address auto                    # a running `ray start` cluster
    RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265 \\
        ray job submit --working-dir . -- python experiments/low_shot.py --smoke-test

Results: <output.dir>/<sweep.name>/tasks.parquet (one row per trial x task, columns
low_shot_fraction, i2i_variant), report.md with the low-shot curves (one line per variant).
"""
import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(__doc__, "low_shot"))
