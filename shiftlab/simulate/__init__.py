"""`shiftlab simulate`: what a rollout configuration would do, before anyone
runs it. The controller's own state machine, strategy plans and alarm
evaluator, driven in virtual time against modelled traffic and a modelled
fault (engine), many seeded runs and several configurations side by side
(report), and a chart of one run as a self-contained HTML page (chart).

traffic: the load models and recorded profiles; faults: what blue and green
do to requests and metrics; scenario: the world as a file or flags.
"""
