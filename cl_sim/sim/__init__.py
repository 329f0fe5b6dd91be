"""The simulator: one arrival loop for every stream.

    schedule.py  arrivals (an ordering, or times per tenant) and the slots they share: `Schedule`
    costs.py     simulated seconds of a phase, fitted to measured phase wall times: `CostModel`
    arrivals.py  what one arrival does: its teachers, its method's recipe, its rows and costs
    loop.py      `simulate(cfg, tasks, executor, schedule, costs)`: the loop itself
    references.py  after a stream: KT's single-task references and the step- and work-matched ST-A controls

`cl_sim.simulate.run_stream` (the ordering stream: one arrival at a time, KT references, task rows)
and `cl_sim.timeline.run_timeline` (tenants: arrival times, concurrency, onboarding latency) are
both this loop plus their own summary.
"""
