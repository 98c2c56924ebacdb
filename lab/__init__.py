"""The lab: PostgreSQL, N API servers, nginx, Prometheus and exporters on one machine.

Modules, each with one job (docs/lab.md has the tour):
  settings   what the environment asks for (ports, folders, programs)
  state      the one state file, LAB_DIR/run/state.json
  ports      port choice (pure)
  cgroups    how SERVER_CPUS is enforced: cgroup v2, systemd, cgroup v1, or pinning
  planner    (what runs, what is asked) -> ordered steps (pure)
  procs      starting and stopping processes, waiting for them (over pytools/)
  configs    the generated nginx, Prometheus and process-exporter configs
  exporters  the Prometheus exporters the dashboard reads
  services   PostgreSQL, servers, nginx, Prometheus: the steps carried out; the Lab's
             methods the commands call (up, scale, restart, down)
  errors     Failed: what library code raises (the command layer prints it, exits 1)
  options    what a command is asked through the environment, read once, passed as values
  runs       load tests
  scaling    the ceiling and the sweep
  demo       the unattended demo
  cli        the commands: parse, call the Lab, print (up, scale, status, ...)
"""
