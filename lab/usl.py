"""Gunther's Universal Scalability Law fitted to a sweep's ceilings (make sweep).

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

lambda: the rate of one server (requests/s); sigma: contention, the share of the work that
queues for something all servers share; kappa: coherency, the cost of servers keeping each
other in step, which grows with every pair and makes the curve turn down after
N* = sqrt((1 - sigma) / kappa).  Least squares with lambda > 0, sigma >= 0, kappa >= 0: for a
given (sigma, kappa) the best lambda is a linear least-squares solution, which a grid over
sigma and kappa uses to find starting points; Levenberg-Marquardt on all three, each step
clipped to the bounds, refines them.
Standard library only; pure functions."""
import math

SIGMA_MAX = 1.5  # sigma above 1: every added server lowers the rate from the first one on
KAPPA_MAX = 1.0
KAPPA_ZERO = 1e-6  # kappa below this: no peak in sight


def shape(n, sigma, kappa):
    return n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def best_lambda(points, sigma, kappa):
    """The lambda minimising the squared error for SIGMA and KAPPA, and that error."""
    f = [shape(n, sigma, kappa) for n, _ in points]
    den = sum(v * v for v in f)
    lam = sum(v * x for v, (_, x) in zip(f, points)) / den if den > 0 else 0.0
    lam = max(lam, 1e-12)
    return lam, sum((x - lam * v) ** 2 for v, (_, x) in zip(f, points))


def solve3(a, b):
    """A 3x3 linear system A x = B by Gaussian elimination with pivoting; None if singular."""
    m = [list(row) + [v] for row, v in zip(a, b)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-300:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(3):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[r][3] / m[r][r] for r in range(3)]


def refine(points, lam, sigma, kappa):
    """Levenberg-Marquardt on (lambda, sigma, kappa) from a start, each step clipped to the
    bounds (lambda > 0, sigma in [0, SIGMA_MAX], kappa in [0, KAPPA_MAX])."""
    def sse(p):
        return sum((x - p[0] * shape(n, p[1], p[2])) ** 2 for n, x in points)

    p, damp = [lam, sigma, kappa], 1e-3
    current = sse(p)
    for _ in range(500):
        jtj = [[0.0] * 3 for _ in range(3)]
        jtr = [0.0] * 3
        for n, x in points:
            d = 1 + p[1] * (n - 1) + p[2] * n * (n - 1)
            j = (n / d, -p[0] * n * (n - 1) / d ** 2, -p[0] * n * n * (n - 1) / d ** 2)
            r = x - p[0] * n / d
            for a in range(3):
                jtr[a] += j[a] * r
                for b in range(3):
                    jtj[a][b] += j[a] * j[b]
        improved = False
        while damp < 1e12:
            a = [[jtj[i][k] + (damp * max(jtj[i][i], 1e-300) if i == k else 0.0) for k in range(3)]
                 for i in range(3)]
            step = solve3(a, jtr)
            if step is None:
                damp *= 10
                continue
            trial = [max(p[0] + step[0], 1e-12), min(max(p[1] + step[1], 0.0), SIGMA_MAX),
                     min(max(p[2] + step[2], 0.0), KAPPA_MAX)]
            value_ = sse(trial)
            if value_ < current:
                done = current - value_ <= 1e-15 * max(current, 1e-300)
                p, current, damp, improved = trial, value_, max(damp / 10, 1e-12), True
                break
            damp *= 10
        if not improved or done:
            break
    return p


def fit(points):
    """POINTS: [(servers, rate)], at least three distinct server counts.  Returns a dict
    lambda, sigma, kappa, r2, peak_servers (None: no peak in sight)."""
    points = [(float(n), float(x)) for n, x in points]
    if len({n for n, _ in points}) < 3:
        raise ValueError("the fit needs at least three server counts")

    def err(sigma, kappa):
        return best_lambda(points, sigma, kappa)[1]

    # A grid first (kappa on a log scale, and zero), then each start of the best few refined:
    # the error surface has a long valley where sigma and kappa trade against each other.
    kappas = [0.0] + [10 ** (e / 4) for e in range(-28, 1)]
    sigmas = [i * SIGMA_MAX / 60 for i in range(61)]
    starts = sorted((err(s, k), s, k) for s in sigmas for k in kappas)[:5]
    best = None
    for _, s0, k0 in starts:
        for k_start in (k0, 0.0):
            lam0 = best_lambda(points, s0, k_start)[0]
            p = refine(points, lam0, s0, k_start)
            e = sum((x - p[0] * shape(n, p[1], p[2])) ** 2 for n, x in points)
            if best is None or e < best[0]:
                best = (e, p)
    sse, (lam, sigma, kappa) = best
    mean = sum(x for _, x in points) / len(points)
    sst = sum((x - mean) ** 2 for _, x in points)
    r2 = 1 - sse / sst if sst > 0 else (1.0 if sse < 1e-9 else 0.0)
    return {"lambda": lam, "sigma": sigma, "kappa": kappa, "r2": r2,
            "peak_servers": peak(sigma, kappa)}


def peak(sigma, kappa):
    """N* = sqrt((1 - sigma) / kappa), the count past which added servers lower the rate;
    None when kappa is about 0 (no peak in sight); 1 when sigma >= 1."""
    if sigma >= 1:
        return 1.0
    if kappa < KAPPA_ZERO:
        return None
    return math.sqrt((1 - sigma) / kappa)


def value(usl, n):
    return usl["lambda"] * shape(n, usl["sigma"], usl["kappa"])
