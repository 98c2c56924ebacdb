"""What one command is asked through the environment, read once by the command layer (cli,
runs, scaling) and handed to the lab's methods as values: the layout wished for (Wishes) and
the shape of a load run (LoadOptions).  A command that runs others (demo) passes changed copies
(dataclasses.replace) instead of changing os.environ."""
import os
from dataclasses import dataclass, field

from lab import planner
from lab.errors import Failed
from lab.settings import BUDGET_DEFAULT

MIXES = {
    "scenario": ["/products?category=electronics", "/products/1", "/report"],
    "browse": ["/products?category=electronics", "/products/1"],
}


@dataclass(frozen=True)
class Wishes:
    """The layout settings the environment gives (None or "": not given; the layout's own or
    the default is used then): DB_BUDGET, SERVER_CPUS, REPORT_MODE, BALANCE, DB_REPLICAS,
    DB_CPUS (None: not given; "" given empty: no limit)."""
    budget: str = None
    cpus: str = None
    report_mode: str = ""
    balance: str = ""
    db_replicas: str = None
    db_cpus: str = None

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(env.get("DB_BUDGET") or None, env.get("SERVER_CPUS"), env.get("REPORT_MODE") or "",
                   env.get("BALANCE") or "", env.get("DB_REPLICAS") or None, env.get("DB_CPUS"))

    def request(self, servers, budget=None, cpus=None, balance=None, layout=None):
        """The layout asked for: SERVERS; BUDGET and CPUS when given (up keeps the layout's),
        else the wished ones; BALANCE wished, else BALANCE (the layout's, kept in the state like
        SERVERS), else round robin.  DB_REPLICAS and DB_CPUS wished, else LAYOUT's (the last
        applied layout's dict: kept like SERVERS), else none.  planner.Refused when a setting
        is not valid."""
        layout = layout or {}
        replicas = self.db_replicas if self.db_replicas is not None else layout.get("db_replicas") or 0
        db_cpus = self.db_cpus if self.db_cpus is not None else layout.get("db_cpus") or ""
        return planner.parse_request(servers, budget if budget is not None else self.budget or BUDGET_DEFAULT,
                                     (self.cpus or "") if cpus is None else cpus,
                                     self.report_mode or "live",
                                     self.balance or balance or planner.BALANCE_DEFAULT,
                                     replicas, db_cpus)


@dataclass(frozen=True)
class LoadOptions:
    """A load run and a ceiling search as asked (docs/lab.md lists the settings)."""
    mix: str = "scenario"
    base_url: str = ""
    name: str = ""  # LOAD_NAME: the result's name instead of the layout's
    connections: str = "100"
    duration: str = "30s"
    threads: str = "2"
    extra_args: list = field(default_factory=list)  # LOADTEST_ARGS
    ceiling_stage: str = ""
    ceiling_max: str = ""
    ceiling_start: str = ""
    slo_p99: str = ""
    slo_failures: str = ""

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        mix = env.get("MIX") or "scenario"
        if mix not in MIXES:
            raise Failed("MIX must be scenario or browse, got '%s'" % mix)
        return cls(mix, env.get("BASE_URL") or "", env.get("LOAD_NAME") or "",
                   env.get("LOAD_CONNECTIONS") or "100", env.get("LOAD_DURATION") or "30s",
                   env.get("LOAD_THREADS") or "2", (env.get("LOADTEST_ARGS") or "").split(),
                   env.get("CEILING_STAGE") or "", env.get("CEILING_MAX") or "", env.get("CEILING_START") or "",
                   env.get("SLO_P99") or "", env.get("SLO_FAILURES") or "")

    @property
    def paths(self):
        return MIXES[self.mix]

    def ceiling_argv(self):
        """The ceiling search's options (catalog-loadtest ceiling)."""
        out = ["-c", self.connections, "-t", self.threads]
        for value, option in ((self.ceiling_stage, "--stage"), (self.ceiling_max, "--max-duration"),
                              (self.ceiling_start, "--start-rate"),
                              (self.slo_p99, "--slo-p99"), (self.slo_failures, "--slo-failures")):
            if value:
                out += [option, value]
        return out
