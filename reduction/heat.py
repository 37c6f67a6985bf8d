"""Heat flow out of a nanocrystal into its solvent: the interfacial thermal conductance G from
the lattice cooling time (docs/science.md 12).

Model: a sphere of radius R, density rho and specific heat c, uniformly hot (its internal
conduction is fast), loses heat through an interface of conductance G (W m^-2 K^-1) in series
with quasi-steady conduction into the solvent (conductivity kappa_f, resistance R / kappa_f per
area for a sphere). Its excess temperature decays exponentially with

    tau = (R rho c / 3) (1 / G + R / kappa_f)          =>   G = 1 / (3 tau / (R rho c) - R / kappa_f)

The lumped-capacitance limit (kappa_f -> infinity) is tau = R rho c / (3 G). Assumptions: the
solvent's heat capacity is ignored (quasi-steady), the ligand shell belongs to the interface,
and the NC's heat capacity is the bulk value. This is the interface-plus-conduction limit of
the model of Wilson, Cahill and Braun (Phys. Rev. B 66, 224301, 2002) for nanoparticles in
fluids. A tau shorter than the solvent alone allows leaves G undetermined (only a lower bound).

EXAMPLE::

    from trxrd.reduction.heat import interface_conductance, MATERIALS, SOLVENT_CONDUCTIVITY
    m = MATERIALS["CuInSe2"]
    interface_conductance(2500.0, 70.0, 3.5, solvent_conductivity_w_mk=SOLVENT_CONDUCTIVITY["dodecane"], **m)
    # (~8.1e5, ~2.3e4) W m^-2 K^-1
"""
from __future__ import annotations

import math

#: bulk density (kg/m^3) and specific heat (J/(kg K)) near room temperature
MATERIALS = {
    "CuInSe2": {"density_kg_m3": 5770.0, "heat_capacity_j_kgk": 296.0},
    "PbSe": {"density_kg_m3": 8100.0, "heat_capacity_j_kgk": 175.0},
    "CdSe": {"density_kg_m3": 5820.0, "heat_capacity_j_kgk": 255.0},
}
#: thermal conductivity of common solvents near room temperature (W/(m K))
SOLVENT_CONDUCTIVITY = {"dodecane": 0.14, "hexane": 0.12, "toluene": 0.13, "octadecene": 0.15,
                        "chloroform": 0.12, "water": 0.60}


def interface_conductance(tau_ps: float, tau_err_ps: float | None, radius_nm: float, *, density_kg_m3: float,
                          heat_capacity_j_kgk: float, solvent_conductivity_w_mk: float) -> tuple:
    """G (W m^-2 K^-1) and its error from the cooling time *tau_ps* (+- *tau_err_ps*) of a
    sphere of *radius_nm* (see module). ``ValueError`` for non-positive inputs or a cooling
    faster than conduction through the solvent alone allows."""
    for name, v in (("tau_ps", tau_ps), ("radius_nm", radius_nm), ("density_kg_m3", density_kg_m3),
                    ("heat_capacity_j_kgk", heat_capacity_j_kgk),
                    ("solvent_conductivity_w_mk", solvent_conductivity_w_mk)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    r = radius_nm * 1e-9
    capacity = r * density_kg_m3 * heat_capacity_j_kgk / 3.0          # J m^-2 K^-1
    resistance = tau_ps * 1e-12 / capacity - r / solvent_conductivity_w_mk
    if resistance <= 0:
        raise ValueError(f"a cooling time of {tau_ps:g} ps is shorter than conduction through the solvent alone "
                         f"allows ({capacity * r / solvent_conductivity_w_mk * 1e12:.0f} ps): G is not determined")
    g = 1.0 / resistance
    err = None if tau_err_ps is None or not math.isfinite(tau_err_ps) else g * g * tau_err_ps * 1e-12 / capacity
    return g, err
