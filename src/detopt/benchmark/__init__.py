"""Benchmark detopt's SRSO loop against black-box optimizers at equal simulation budget.

- :mod:`detopt.benchmark.problems`: noisy analytic problems with a known optimum and the AIDO
  sampling calorimeter, each with a noisy black-box observation and a true objective;
- :mod:`detopt.benchmark.optimizers`: one adapter per method (SRSO and its ablations, CMA-ES,
  optuna TPE and GP, random search) behind a common protocol and an event budget;
- :mod:`detopt.benchmark.harness`: same problems, seeds and budget for all; true objective of the
  recommended design against events, events to 5% of the best known, wall time;
- :mod:`detopt.benchmark.report`: figure and markdown tables.

``detopt benchmark SUITE`` (:mod:`detopt.cli.benchmark`) and ``bench/optimizers.py`` run it.
Nothing heavy is imported here: torch, cma and optuna load inside the functions that use them.
"""
