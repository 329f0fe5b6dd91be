"""Reporting: everything that turns result tables into what a reader sees.

    stats.py       paired differences over seeds, t-intervals (scipy), the ordering-effect test
    tables.py      Markdown tables and the training-size column
    analysis.py    ordering and transfer analyses of a sweep's task rows (tables and heatmaps)
    plots.py       PNG plots (accuracy matrix, KT by position, curves, Pareto, attention, tenants)
    run.py         `write_report`: report.md (+ report.html) of a run or a sweep
    html.py        the HTML version of report.md
    results_md.py  docs/RESULTS.md: the reproduction suite's sections and verdict table

Import the module you need (`from cl_sim.report.run import write_report`); this package file
imports nothing, so reading `stats` does not load matplotlib.
"""
