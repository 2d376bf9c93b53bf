"""Reference values of log I_nu(x) and I_{nu+1}(x)/I_nu(x) at 50 significant digits (mpmath).

Run ``python tests/reference/bessel_reference.py`` to regenerate ``bessel_reference.csv`` beside this file.

Method, independent of sawdist's (power series / Debye expansion / recurrence): Poisson's integral
    I_nu(x) = (x/2)^nu / (sqrt(pi) Gamma(nu + 1/2)) * int_0^pi exp(x cos th) sin(th)^(2 nu) dth,
evaluated by mpmath's tanh-sinh quadrature at 60 digits on intervals split around the peak of the integrand
(cos th* = (sqrt(nu^2 + x^2) - nu) / x, width from the curvature there), with the peak factored out so nothing
overflows (``log_iv_quad`` of ``mpmath_reference.py``, which also serves the property-based tests). Where mpmath's
own hypergeometric ``besseli`` converges (moderate x) the two are cross-checked and the script stops if they disagree
beyond 1e-40.
"""

import csv
import itertools
import os

import mpmath as mp

if __package__:
    from .mpmath_reference import log_iv_quad
else:  # run as a script, or collected by pytest from this folder
    from mpmath_reference import log_iv_quad

mp.mp.dps = 60

NUS = ["0", "0.5", "1", "1.5", "4.5", "10.5", "24", "24.5", "25", "30", "31", "100", "511", "1535", "6143", "49999",
       "100000"]
XS = ["0", "1e-300", "1e-10", "1e-3", "0.1", "0.5", "1", "2", "5", "10", "30", "100", "1000", "1e4", "66000", "1e5",
      "1e6", "1e7"]


def log_iv(nu, x):
    value = log_iv_quad(nu, x, dps=mp.mp.dps - 10)  # quadrature at mp.mp.dps = 60 working digits
    if 0 < x <= 1000:
        check = mp.log(mp.besseli(nu, x))
        if abs(value - check) > mp.mpf("1e-40") * max(1, abs(check)):
            raise RuntimeError(f"quadrature and besseli disagree at nu={nu}, x={x}: {value} vs {check}")
    return value


def main():
    path = os.path.join(os.path.dirname(__file__), "bessel_reference.csv")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["nu", "x", "log_iv", "ratio"])
        for nu_s, x_s in itertools.product(NUS, XS):
            nu, x = mp.mpf(nu_s), mp.mpf(x_s)
            lv = log_iv(nu, x)
            ratio = mp.mpf(0) if x == 0 else mp.exp(log_iv(nu + 1, x) - lv)
            writer.writerow([nu_s, x_s, mp.nstr(lv, 50), mp.nstr(ratio, 50)])
            fh.flush()
            print(nu_s, x_s, mp.nstr(lv, 20), mp.nstr(ratio, 20), flush=True)


if __name__ == "__main__":
    main()
